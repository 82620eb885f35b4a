//go:build race

package envoy

// raceEnabled is set under -race, which makes the differential test ten times slower: it walks
// fewer edits there, the race detector needing only a few to see the code run.
const raceEnabled = true
