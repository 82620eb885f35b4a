package main

import (
	"runtime"
	"testing"
)

// Not parallel: it changes the process's GOMAXPROCS, and puts it back.
func TestConcurrencySetsTheThreadCount(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	tests := []struct {
		name    string
		n       int
		want    int
		wantErr bool
	}{
		{name: "0 leaves Go's default", n: 0, want: before},
		{name: "1 runs the proxy on one thread", n: 1, want: 1},
		{name: "a negative count is refused", n: -2, want: before, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runtime.GOMAXPROCS(before)
			c := concurrencyFlag{n: tt.n}
			if err := c.apply(); (err != nil) != tt.wantErr {
				t.Fatalf("apply: %v, want error %v", err, tt.wantErr)
			}
			if got := runtime.GOMAXPROCS(0); got != tt.want {
				t.Errorf("GOMAXPROCS = %d, want %d", got, tt.want)
			}
		})
	}
}
