package norace

import (
	"slices"
	"testing"
)

func TestWithoutRaceFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{name: "no GOFLAGS", env: []string{"HOME=/root"}, want: []string{"HOME=/root"}},
		{name: "-race alone", env: []string{"GOFLAGS=-race", "A=b"}, want: []string{"GOFLAGS=", "A=b"}},
		{name: "-race among others", env: []string{"GOFLAGS=-mod=mod -race=true -count=1"}, want: []string{"GOFLAGS=-mod=mod -count=1"}},
		{name: "a flag that only starts like it", env: []string{"GOFLAGS=-racey"}, want: []string{"GOFLAGS=-racey"}},
		{name: "another variable named like it", env: []string{"XGOFLAGS=-race"}, want: []string{"XGOFLAGS=-race"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := withoutRaceFlag(tc.env); !slices.Equal(got, tc.want) {
				t.Errorf("withoutRaceFlag(%q) = %q, want %q", tc.env, got, tc.want)
			}
		})
	}
}
