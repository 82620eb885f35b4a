package httpfwd

import (
	"testing"
	"time"
)

// BenchmarkForwardWithActions is BenchmarkForward through a route with the actions a
// VirtualService typically sets (Istio's default retry policy, header changes, a prefix
// rewrite, a timeout), to compare against the same requests without them.
func BenchmarkForwardWithActions(b *testing.B) {
	backend := benchBackend(b)
	act := &Actions{
		Timeout:  10 * time.Second,
		Retry:    &RetryPolicy{Attempts: 2, On: RetryConnectFailure | RetryRefusedStream | RetryStatusCodes, StatusCodes: []int{503}},
		Request:  HeaderOps{Set: []Field{{Name: "x-route", Value: "r1"}}, Remove: []string{"user-agent"}},
		Response: HeaderOps{Add: []Field{{Name: "x-served-by", Value: "mesh"}}},
		Rewrite:  &Rewrite{Prefix: "/", URI: "/v2/"},
	}
	addr := startProxy(b, &Server{Router: &actionRouter{addrs: []string{backend}, act: act}})
	for _, r := range benchRequests {
		b.Run(r.name, func(b *testing.B) { runClients(b, addr, r.raw) })
	}
}
