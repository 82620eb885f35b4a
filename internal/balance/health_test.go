package balance

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// apply plays a string of events on key: F is a failure, S a success.
func apply(h *Health, key, events string) (ejections int) {
	for _, ev := range events {
		switch ev {
		case 'F':
			if h.ReportFailure(key) {
				ejections++
			}
		case 'S':
			h.ReportSuccess(key)
		}
	}
	return ejections
}

func TestHealthEjectsAfterConsecutiveFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		threshold   uint32
		events      string
		wantEjected bool
	}{
		{name: "four failures in a row do not eject", events: "FFFF", wantEjected: false},
		{name: "five failures in a row eject", events: "FFFFF", wantEjected: true},
		{name: "a success in between resets the streak", events: "FFFFSFFFF", wantEjected: false},
		{name: "five failures after a reset eject", events: "FFFFSFFFFF", wantEjected: true},
		{name: "a success after the ejection does not cut it short", events: "FFFFFS", wantEjected: true},
		{name: "only successes never eject", events: "SSSSSSS", wantEjected: false},
		{name: "a configured threshold of two ejects after two", threshold: 2, events: "FF", wantEjected: true},
		{name: "a configured threshold of two is reset by a success", threshold: 2, events: "FSF", wantEjected: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock()
			h := NewHealth(HealthConfig{ConsecutiveFailures: tt.threshold, Now: clk.Now})
			apply(h, "10.0.0.1:80", tt.events)
			if got := h.Ejected("10.0.0.1:80"); got != tt.wantEjected {
				t.Errorf("after %q Ejected = %v, want %v", tt.events, got, tt.wantEjected)
			}
			if h.Ejected("10.0.0.2:80") {
				t.Error("another endpoint is ejected too")
			}
		})
	}
}

func TestHealthEjectionExpires(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	h := NewHealth(HealthConfig{ConsecutiveFailures: 5, EjectFor: 30 * time.Second, Now: clk.Now})
	const key = "10.0.0.1:80"

	if n := apply(h, key, "FFFFF"); n != 1 {
		t.Fatalf("five failures reported %d ejections, want 1", n)
	}
	clk.Advance(29 * time.Second)
	if !h.Ejected(key) {
		t.Fatal("endpoint came back before 30s")
	}
	if n := apply(h, key, "FFFFFFFFFF"); n != 0 {
		t.Errorf("failures while ejected ejected it again %d times", n)
	}
	clk.Advance(time.Second)
	if h.Ejected(key) {
		t.Fatal("endpoint still ejected after 30s")
	}
	if n := apply(h, key, "FFFF"); n != 0 || h.Ejected(key) {
		t.Error("four failures after the ejection ended ejected it again: failures while ejected were counted")
	}
	if n := apply(h, key, "F"); n != 1 || !h.Ejected(key) {
		t.Error("a new streak of five did not eject the endpoint again")
	}
	if got := h.ejected.Load(); got != 1 {
		t.Errorf("ejected count = %d, want 1", got)
	}
	clk.Advance(30 * time.Second)
	if h.Ejected(key) {
		t.Error("second ejection did not end after 30s")
	}
	if got := h.ejected.Load(); got != 0 {
		t.Errorf("ejected count after expiry = %d, want 0", got)
	}
}

func TestHealthDefaults(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	h := NewHealth(HealthConfig{Now: clk.Now})
	apply(h, "k", "FFFF")
	if h.Ejected("k") {
		t.Fatal("the default threshold is below 5")
	}
	apply(h, "k", "F")
	if !h.Ejected("k") {
		t.Fatal("the default threshold is above 5")
	}
	clk.Advance(30*time.Second - time.Nanosecond)
	if !h.Ejected("k") {
		t.Fatal("the default ejection is shorter than 30s")
	}
	clk.Advance(time.Nanosecond)
	if h.Ejected("k") {
		t.Fatal("the default ejection is longer than 30s")
	}
	if NewHealth(HealthConfig{}).now == nil {
		t.Error("a nil Now was not replaced by time.Now")
	}
}

func TestHealthUnknownKeys(t *testing.T) {
	t.Parallel()
	h := NewHealth(HealthConfig{})
	h.ReportSuccess("never-seen")
	if h.Ejected("never-seen") {
		t.Error("an unknown key is ejected")
	}
	if h.lookup("never-seen") != nil {
		t.Error("checking or succeeding on an unknown key created a record for it")
	}
}

func TestHealthEjectedDoesNotAllocate(t *testing.T) {
	h := NewHealth(HealthConfig{})
	apply(h, "10.0.0.1:80", "FFFFF")
	h.ReportFailure("10.0.0.2:80")
	for _, key := range []string{"10.0.0.1:80", "10.0.0.2:80", "unknown"} {
		if n := testing.AllocsPerRun(1000, func() { h.Ejected(key) }); n != 0 {
			t.Errorf("Ejected(%q) allocates %v times", key, n)
		}
	}
}

func TestHealthIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	h := NewHealth(HealthConfig{ConsecutiveFailures: 3, EjectFor: time.Second, Now: clk.Now})
	keys := make([]string, 8)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.0.0.%d:80", i)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for n := range 2000 {
				key := keys[(g+n)%len(keys)]
				switch n % 7 {
				case 0:
					h.ReportSuccess(key)
				case 1:
					h.Ejected(key)
				case 2:
					clk.Advance(100 * time.Millisecond)
				default:
					h.ReportFailure(key)
				}
			}
		})
	}
	wg.Wait()
	// The shortcut counter must match the records exactly, or Pick would skip checks it needs.
	var set int64
	for _, key := range keys {
		if s := h.lookup(key); s != nil && s.until.Load() != 0 {
			set++
		}
	}
	if got := h.ejected.Load(); got != set {
		t.Errorf("ejected count = %d, but %d records have an ejection time", got, set)
	}
}
