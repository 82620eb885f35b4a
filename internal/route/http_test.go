package route

import (
	"testing"
)

const httpbinEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other, namespace: default}
spec:
  hosts: [other.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 8080, name: http-alt, protocol: HTTP}
---
`

const matchKindsVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: kinds, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
  - name: exact
    match: [{uri: {exact: /exact}}]
    route: [{destination: {host: other.org, subset: v1}}]
  - name: prefix-ignore-case
    match: [{uri: {prefix: /Pre}, ignoreUriCase: true}]
    route: [{destination: {host: other.org, port: {number: 8080}}}]
  - name: regex
    match: [{uri: {regex: "/re/[0-9]+"}}]
    route: [{destination: {host: httpbin.org}}]
  - name: method-and-header
    match: [{method: {exact: POST}, headers: {x-user: {exact: bob}}}]
    route: [{destination: {host: httpbin.org, subset: bob}}]
  - name: without-header
    match: [{uri: {prefix: /w}, withoutHeaders: {x-debug: {}}}]
    route: [{destination: {host: httpbin.org, subset: quiet}}]
  - name: without-empty
    match: [{uri: {prefix: /e}, withoutHeaders: {x-empty: {exact: ""}}}]
    route: [{destination: {host: httpbin.org, subset: nonempty}}]
  - name: star-present
    match: [{uri: {prefix: /s}, headers: {x-any: {regex: "*"}}}]
    route: [{destination: {host: httpbin.org, subset: star}}]
  - name: query
    match: [{queryParams: {v: {exact: "2"}}}]
    route: [{destination: {host: httpbin.org, subset: v2}}]
  - name: scheme-authority
    match: [{scheme: {exact: http}, authority: {prefix: "httpbin.org:"}}]
    route: [{destination: {host: httpbin.org, subset: withport}}]
  - name: or-blocks
    match: [{uri: {exact: /a}}, {uri: {exact: /b}}]
    route: [{destination: {host: httpbin.org, subset: ab}}]
`

func TestHTTPMatchKinds(t *testing.T) {
	t.Parallel()
	table := Build(snapshot(t, httpbinEntry+matchKindsVS), Proxy{Namespace: "default"})
	if errs := table.Errors(); len(errs) > 0 {
		t.Fatalf("build: %v", errs)
	}
	tests := []struct {
		name      string
		method    string
		path      string
		authority string
		headers   headers
		port      uint32
		host      string
		wantRule  string
		wantClust string
	}{
		{name: "an exact uri takes its path", path: "/exact", wantRule: "exact", wantClust: "outbound|80|v1|other.org"},
		{name: "an exact uri ignores the query", path: "/exact?x=1", wantRule: "exact", wantClust: "outbound|80|v1|other.org"},
		{name: "an exact uri refuses a longer path", path: "/exactly", wantRule: ""},
		{name: "a prefix with ignoreUriCase takes other cases", path: "/PREFIX/x", wantRule: "prefix-ignore-case", wantClust: "outbound|8080||other.org"},
		{name: "a regex must match the whole path", path: "/re/123", wantRule: "regex", wantClust: "outbound|80||httpbin.org"},
		{name: "a regex refuses a partial match", path: "/re/123/x", wantRule: ""},
		{name: "method and header must both hold", method: "POST", path: "/", headers: headers{"x-user": "bob"}, wantRule: "method-and-header", wantClust: "outbound|80|bob|httpbin.org"},
		{name: "a method alone is not enough", method: "POST", path: "/", wantRule: ""},
		{name: "withoutHeaders takes a request without the header", path: "/w", wantRule: "without-header", wantClust: "outbound|80|quiet|httpbin.org"},
		{name: "withoutHeaders refuses a request with the header", path: "/w", headers: headers{"x-debug": "1"}, wantRule: ""},
		{name: "withoutHeaders with a value treats a missing header as empty", path: "/e", wantRule: ""},
		{name: "withoutHeaders with a value takes another value", path: "/e", headers: headers{"x-empty": "x"}, wantRule: "without-empty", wantClust: "outbound|80|nonempty|httpbin.org"},
		{name: "a header regex of a lone star means present", path: "/s", headers: headers{"x-any": ""}, wantRule: "star-present", wantClust: "outbound|80|star|httpbin.org"},
		{name: "a header regex of a lone star refuses a missing header", path: "/s", wantRule: ""},
		{name: "a query parameter matches its value", path: "/q?a=1&v=2", wantRule: "query", wantClust: "outbound|80|v2|httpbin.org"},
		{name: "a query parameter refuses another value", path: "/q?v=3", wantRule: ""},
		{name: "scheme and authority match the Host header as sent", path: "/", authority: "httpbin.org:80", wantRule: "scheme-authority", wantClust: "outbound|80|withport|httpbin.org"},
		{name: "several match blocks are ORed", path: "/b", wantRule: "or-blocks", wantClust: "outbound|80|ab|httpbin.org"},
		{name: "a host no VirtualService binds gets no route", host: "other.org", path: "/exact", wantRule: "-"},
		{name: "a port the host is not routed on gets no route", port: 8080, path: "/exact", wantRule: "-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := &Request{Host: "httpbin.org", Port: 80, Method: "GET", Scheme: "http", Authority: "httpbin.org",
				Path: []byte(tc.path), Headers: tc.headers}
			if tc.method != "" {
				req.Method = tc.method
			}
			if tc.authority != "" {
				req.Authority = tc.authority
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			if tc.port != 0 {
				req.Port = tc.port
			}
			got := table.HTTP(req)
			switch {
			case tc.wantRule == "-":
				if got != nil {
					t.Fatalf("got rule %v, want none (no VirtualService binds)", got)
				}
				return
			case got == nil:
				t.Fatalf("got no route, want rule %q", tc.wantRule)
			case tc.wantRule == "":
				if !got.NotFound {
					t.Fatalf("got rule %q, want NotFound", got.Name)
				}
				return
			case got.Name != tc.wantRule:
				t.Fatalf("got rule %q, want %q", got.Name, tc.wantRule)
			}
			if c := got.Pick(0).Cluster; c != tc.wantClust {
				t.Fatalf("cluster %q, want %q", c, tc.wantClust)
			}
		})
	}
}
