package balance

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// headers makes a HashRequest.Header from a map.
func headers(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

func TestHashPolicyKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		policy  HashPolicy
		req     HashRequest
		wantOK  bool
		wantKey string // the string whose HashString the key must be; "" skips the check
		// wantCookie is a prefix of the Set-Cookie value wanted, "" for none.
		wantCookie string
	}{
		{name: "a header policy keys on the header", policy: HashPolicy{Header: "x-user"}, req: HashRequest{Header: headers(map[string]string{"x-user": "alice"})}, wantOK: true, wantKey: "alice"},
		{name: "a header policy without the header has no key", policy: HashPolicy{Header: "x-user"}, req: HashRequest{Header: headers(nil)}},
		{name: "a header policy on TCP has no key", policy: HashPolicy{Header: "x-user"}, req: HashRequest{}},
		{name: "a cookie policy keys on the cookie among others", policy: HashPolicy{Cookie: &CookiePolicy{Name: "session"}}, req: HashRequest{Header: headers(map[string]string{"Cookie": "a=1; session=s-42; b=2"})}, wantOK: true, wantKey: "s-42"},
		{name: "a cookie policy without ttl and without the cookie has no key", policy: HashPolicy{Cookie: &CookiePolicy{Name: "session"}}, req: HashRequest{Header: headers(map[string]string{"Cookie": "a=1"})}},
		{
			name: "a cookie policy with ttl sets the missing cookie", policy: HashPolicy{Cookie: &CookiePolicy{Name: "session", Path: "/", TTL: time.Hour}},
			req: HashRequest{Header: headers(nil), Conn: "10.0.0.9:5555->10.0.0.1:80"}, wantOK: true, wantCookie: "session=",
		},
		{name: "a cookie policy with ttl keys on a cookie the client has", policy: HashPolicy{Cookie: &CookiePolicy{Name: "session", TTL: time.Hour}}, req: HashRequest{Header: headers(map[string]string{"Cookie": "session=abc"})}, wantOK: true, wantKey: "abc"},
		{name: "a source IP policy keys on the client address", policy: HashPolicy{SourceIP: true}, req: HashRequest{Source: netip.MustParseAddr("192.0.2.7")}, wantOK: true},
		{name: "a source IP policy without an address has no key", policy: HashPolicy{SourceIP: true}, req: HashRequest{}},
		{name: "a query policy keys on the parameter", policy: HashPolicy{Query: "user"}, req: HashRequest{RawQuery: "a=1&user=bob&user=eve"}, wantOK: true, wantKey: "bob"},
		{name: "a query policy decodes an escaped value", policy: HashPolicy{Query: "user"}, req: HashRequest{RawQuery: "user=b%6Fb"}, wantOK: true, wantKey: "bob"},
		{name: "a query policy without the parameter has no key", policy: HashPolicy{Query: "user"}, req: HashRequest{RawQuery: "username=bob"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, ok, cookie := tt.policy.Key(tt.req)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if tt.wantKey != "" && key != HashString(tt.wantKey) {
				t.Errorf("key = %x, want the hash of %q", key, tt.wantKey)
			}
			if !strings.HasPrefix(cookie, tt.wantCookie) || (tt.wantCookie == "") != (cookie == "") {
				t.Errorf("Set-Cookie = %q, want one starting %q", cookie, tt.wantCookie)
			}
		})
	}
}

func TestHashCookieTTLRoundTrip(t *testing.T) {
	t.Parallel()
	policy := HashPolicy{Cookie: &CookiePolicy{Name: "session", Path: "/app", TTL: 90 * time.Second}}
	key, ok, set := policy.Key(HashRequest{Header: headers(nil), Conn: "10.0.0.9:5555->10.0.0.1:80"})
	if !ok || set == "" {
		t.Fatalf("no cookie set: ok=%v set=%q", ok, set)
	}
	for _, part := range []string{"; Max-Age=90", "; Path=/app", "; HttpOnly"} {
		if !strings.Contains(set, part) {
			t.Errorf("Set-Cookie %q lacks %q", set, part)
		}
	}
	// The client sends the cookie back: the key must be the one the first request used.
	pair, _, _ := strings.Cut(set, ";")
	again, ok, set2 := policy.Key(HashRequest{Header: headers(map[string]string{"Cookie": pair})})
	if !ok || again != key || set2 != "" {
		t.Errorf("returning the cookie gave key %x (ok %v, set %q), want %x and no new cookie", again, ok, set2, key)
	}
	other, _, _ := policy.Key(HashRequest{Header: headers(nil), Conn: "10.0.0.8:6666->10.0.0.1:80"})
	if other == key {
		t.Error("two connections got the same generated cookie")
	}
}

func TestHashSourceIPKeepsAClientOnOneEndpoint(t *testing.T) {
	t.Parallel()
	p := NewPolicyPicker(targetsN(8), Client{}, nil, PolicyConfig{LB: LBMaglev})
	policy := HashPolicy{SourceIP: true}
	seen := map[int]bool{}
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "198.51.100.9", "203.0.113.5"} {
		key, _, _ := policy.Key(HashRequest{Source: netip.MustParseAddr(ip)})
		first, _ := p.PickHash(key, nil)
		for range 50 {
			if i, _ := p.PickHash(key, nil); i != first {
				t.Fatalf("client %s went to %d then %d", ip, first, i)
			}
		}
		seen[first] = true
	}
	if len(seen) < 2 {
		t.Error("six clients all landed on one endpoint: the address is not in the key")
	}
}
