package route

import "testing"

// FuzzHTTPMatch feeds arbitrary requests to a table of every match kind: matching must not panic,
// and explain must pick the same rule as the data plane.
func FuzzHTTPMatch(f *testing.F) {
	table := Build(snapshot(f, manyRoutes(40)+""), Proxy{Namespace: "default"})
	f.Add("GET", "/exact/0", "alice", "us-east-1")
	f.Add("POST", "/api/v4/x?version=5", "user3", "eu-7-a")
	f.Add("get", "/CASE/6?a&b=&version=13", "", "")
	f.Add("", "?", "\x00", "eu-15-")
	f.Fuzz(func(t *testing.T, method, path, user, region string) {
		req := &Request{Host: "httpbin.org", Port: 80, Method: method, Scheme: "http", Authority: "api6.httpbin.org",
			Path: []byte(path), Headers: byteHeaders{"x-user": []byte(user), "x-region": []byte(region)}}
		got := table.HTTP(req)
		tr := table.ExplainHTTP(req)
		if got != tr.Route {
			t.Fatalf("HTTP picked %v, ExplainHTTP %v", got, tr.Route)
		}
	})
}

// FuzzParseRetryOn checks retryOn parsing never panics and that the conditions it reads print
// back to the same set.
func FuzzParseRetryOn(f *testing.F) {
	for _, s := range []string{"5xx,connect-failure", "503, 504", "", ",,", "unavailable,cancelled,999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		on, _, err := ParseRetryOn(s)
		if err != nil {
			return
		}
		again, _, err := ParseRetryOn(on.String())
		if err != nil || again != on {
			t.Fatalf("%q read as %s, which reads back as %s (%v)", s, on, again, err)
		}
	})
}
