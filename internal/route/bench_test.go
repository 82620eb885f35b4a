package route

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/norace"
)

// processCPU is the CPU time (user and system) this process has used, in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// manyRoutes is a VirtualService of n http rules that cycle through the match kinds; only the
// last one matches benchRequest.
func manyRoutes(n int) string {
	var b strings.Builder
	b.WriteString(httpbinEntry + `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: many, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
`)
	for i := 0; i < n-1; i++ {
		var m string
		switch i % 8 {
		case 0:
			m = fmt.Sprintf(`{uri: {exact: /exact/%d}}`, i)
		case 1:
			m = fmt.Sprintf(`{uri: {prefix: /prefix/%d}}`, i)
		case 2:
			m = fmt.Sprintf(`{uri: {regex: "/regex/%d/[a-z]+"}}`, i)
		case 3:
			m = fmt.Sprintf(`{headers: {x-user: {exact: user%d}}}`, i)
		case 4:
			m = fmt.Sprintf(`{method: {exact: POST}, uri: {prefix: /api/v%d}}`, i)
		case 5:
			m = fmt.Sprintf(`{queryParams: {version: {exact: "%d"}}}`, i)
		case 6:
			m = fmt.Sprintf(`{authority: {prefix: "api%d."}, ignoreUriCase: true, uri: {prefix: /Case/%d}}`, i, i)
		case 7:
			m = fmt.Sprintf(`{headers: {x-region: {regex: "eu-%d-.*"}}, withoutHeaders: {x-debug: {}}}`, i)
		}
		fmt.Fprintf(&b, "  - name: r%d\n    match: [%s]\n    route: [{destination: {host: other.org, subset: s%d}}]\n", i, m, i)
	}
	b.WriteString("  - name: last\n    match: [{uri: {prefix: /shop}, headers: {x-user: {exact: alice}}}]\n    route: [{destination: {host: httpbin.org, subset: last}}]\n")
	return b.String()
}

func benchRequest() *Request {
	return &Request{Host: "httpbin.org", Port: 80, Method: "GET", Scheme: "http", Authority: "httpbin.org",
		Path:    []byte("/shop/cart/items?page=2&sort=price"),
		Headers: byteHeaders{"x-user": []byte("alice"), "x-region": []byte("us-east-1"), "accept": []byte("*/*")}}
}

// TestManyRoutesTakeTheLast is not parallel: AllocsPerRun needs the test to itself.
func TestManyRoutesTakeTheLast(t *testing.T) {
	if raceEnabled {
		norace.Rerun(t) // the race detector allocates on its own
		return
	}
	table := Build(snapshot(t, manyRoutes(100)), Proxy{Namespace: "default"})
	if errs := table.Errors(); len(errs) > 0 {
		t.Fatalf("build: %v", errs)
	}
	req := benchRequest()
	r := table.HTTP(req)
	if r == nil || r.Name != "last" || r.Index != 99 {
		t.Fatalf("got %v, want rule 99 named last", r)
	}
	if n := testing.AllocsPerRun(100, func() { table.HTTP(req) }); n != 0 {
		t.Fatalf("matching allocates %v times per request, want none", n)
	}
}

func BenchmarkHTTPMatch100Routes(b *testing.B) {
	for _, bc := range []struct {
		name   string
		routes int
	}{
		{name: "no VirtualService", routes: 0},
		{name: "100 routes, the last matches", routes: 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			yaml := httpbinEntry
			if bc.routes > 0 {
				yaml = manyRoutes(bc.routes)
			}
			table := Build(snapshot(b, yaml), Proxy{Namespace: "default"})
			req := benchRequest()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				if r := table.HTTP(req); (r == nil) != (bc.routes == 0) {
					b.Fatalf("unexpected route %v", r)
				}
			}
			// The machine is shared: CPU time spent, unlike wall time, does not count waiting for a core.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
