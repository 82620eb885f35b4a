package route

import (
	"math"
	"testing"
)

// Weights are int32 each and Envoy takes their sum up to 2^32-1; summed in int32 they wrapped, and
// the pick then sent every connection to the first destination (a negative or tiny total).
func TestPickSplitsWeightsWhoseSumOverflowsInt32(t *testing.T) {
	t.Parallel()
	ds := []Destination{{Host: "a", Weight: math.MaxInt32}, {Host: "b", Weight: math.MaxInt32}}
	total := weighted(ds)
	seen := map[string]bool{}
	for _, n := range []uint32{0, math.MaxInt32 - 1, math.MaxInt32, math.MaxUint32 - 2} {
		seen[pick(ds, total, n).Host] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("picks reached %v, want both halves of an even split", seen)
	}
}
