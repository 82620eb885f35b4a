package balance

import "testing"

func TestHealthSetKeepsStatePerCluster(t *testing.T) {
	t.Parallel()
	s := NewHealthSet(HealthConfig{Now: newFakeClock().Now}, 2)
	strict := &OutlierConfig{Consecutive5xx: 1, MaxEjectionPercent: 100}
	a := s.For("a.example:80", strict)
	if !a.Report("10.0.0.1:80", 500) {
		t.Fatal("a 500 did not eject under consecutive5xxErrors 1")
	}
	if again := s.For("a.example:80", strict); again != a || !again.Ejected("10.0.0.1:80") {
		t.Error("a reload did not get the same Health back with its ejection")
	}
	b := s.For("b.example:80", nil)
	if b.Ejected("10.0.0.1:80") || b.Report("10.0.0.1:80", 500) {
		t.Error("another cluster shares the first one's state or thresholds")
	}
	if c := s.For("c.example:80", nil); c == nil || s.Overflow() != 1 || s.Len() != 2 {
		t.Errorf("a third cluster over the limit of 2: Overflow = %d, Len = %d, want 1 and 2", s.Overflow(), s.Len())
	}
	if n := s.Retain(func(c string) bool { return c == "a.example:80" }); n != 1 || s.Len() != 1 {
		t.Errorf("Retain dropped %d, Len %d; want 1 and 1", n, s.Len())
	}
	if s.For("b.example:80", nil) == b {
		t.Error("a dropped cluster came back with its old Health")
	}
}
