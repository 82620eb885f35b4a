package balance

import (
	"testing"
	"time"
)

func TestEjectionsCountEachEjectionOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// before plays on two endpoints; after plays on the first once its ejection ran out.
		before, after string
		want          uint64
	}{
		{name: "no ejection counts nothing", before: "FFFF", want: 0},
		{name: "failures while ejected do not count again", before: "FFFFFFFFFF", want: 2},
		{name: "an endpoint ejected again after its ejection ran out counts twice", before: "FFFFF", after: "FFFFF", want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock()
			h := NewHealth(HealthConfig{Now: clk.Now})
			apply(h, "10.0.0.1:80", tt.before)
			apply(h, "10.0.0.2:80", tt.before)
			clk.Advance(31 * time.Second)
			apply(h, "10.0.0.1:80", tt.after)
			if got := h.Ejections(); got != tt.want {
				t.Errorf("Ejections() = %d, want %d", got, tt.want)
			}
		})
	}
}
