package metrics

import (
	"testing"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// BenchmarkRecordFloor is what recording costs with the series already in hand: the floor the
// cache lookup in BenchmarkRecordRequest adds to.
func BenchmarkRecordFloor(b *testing.B) {
	m, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	r := &telemetry.Request{Status: 200, Service: apiSvc, Duration: 3e6, RequestBytes: 100, ResponseBytes: 4000}
	m.Request(r)
	s, _ := m.httpCache.load(httpKey{svc: apiSvc, status: 200})
	b.ReportAllocs()
	for b.Loop() {
		s.requests.Inc()
		s.duration.Observe(float64(r.Duration) / 1e6)
		s.reqB.Observe(float64(r.RequestBytes))
		s.respB.Observe(float64(r.ResponseBytes))
	}
}
