package balance

import (
	"fmt"
	"testing"
)

func TestRetainDropsOnlyWhatIsGone(t *testing.T) {
	t.Parallel()
	h := NewHealth(HealthConfig{})
	apply(h, "gone:80", "FFFFF")
	apply(h, "stays:80", "FFFFF")
	apply(h, "streak:80", "FF")
	dropped := h.Retain(func(key string) bool { return key != "gone:80" })
	if dropped != 1 || h.Len() != 2 {
		t.Fatalf("Retain dropped %d, %d left; want 1 dropped, 2 left", dropped, h.Len())
	}
	t.Run("forgets the ejection of an endpoint that is gone", func(t *testing.T) {
		if h.Ejected("gone:80") {
			t.Fatal("a dropped endpoint is still ejected")
		}
	})
	t.Run("keeps the ejection and the streak of endpoints that stay", func(t *testing.T) {
		if !h.Ejected("stays:80") || !h.Failing("streak:80") {
			t.Fatalf("ejected %v, failing %v; want both kept", h.Ejected("stays:80"), h.Failing("streak:80"))
		}
	})
	t.Run("keeps the count of ejections exact", func(t *testing.T) {
		if got := h.ejected.Load(); got != 1 {
			t.Fatalf("ejected count %d, want 1", got)
		}
	})
}

func TestHealthIsBounded(t *testing.T) {
	t.Parallel()
	t.Run("makes room by dropping healthy records that no Picker holds", func(t *testing.T) {
		h := NewHealth(HealthConfig{MaxEntries: 16})
		NewPicker([]Target{{Key: "held:80", Weight: 1}}, Locality{}, "", h)
		apply(h, "bad:80", "FFFFF")
		for i := range 100 {
			h.ReportSuccess(fmt.Sprintf("10.0.0.%d:80", i)) // lookups only: nothing recorded
			apply(h, fmt.Sprintf("10.0.1.%d:80", i), "FS")
		}
		if h.Len() > 16 {
			t.Fatalf("%d records tracked, want at most 16", h.Len())
		}
		if h.Evicted() == 0 {
			t.Fatal("nothing counted as evicted")
		}
		if !h.Ejected("bad:80") {
			t.Fatal("an ejected endpoint was dropped to make room")
		}
		if h.lookup("held:80") == nil {
			t.Fatal("a record a Picker holds was dropped to make room")
		}
	})
	t.Run("stops recording when only unhealthy records are left, and counts it", func(t *testing.T) {
		h := NewHealth(HealthConfig{MaxEntries: 2, ConsecutiveFailures: 1})
		apply(h, "a:80", "F")
		apply(h, "b:80", "F")
		apply(h, "c:80", "F")
		if h.Len() != 2 || h.Evicted() != 1 || !h.Ejected("a:80") || !h.Ejected("b:80") {
			t.Fatalf("len %d evicted %d; want the two ejections kept and one record refused", h.Len(), h.Evicted())
		}
	})
}
