//go:build !race

package route

// raceEnabled is set under -race, where sync.Pool drops items at random and so regexp allocates.
const raceEnabled = false
