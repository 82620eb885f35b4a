package httpfwd

import (
	"net/http"
	"strings"
	"testing"
)

// TestUpstreamHeaderReplacesTheClientsFields checks the Upstream.Header hook on both client
// paths: the fields it names reach the upstream once, with the Router's value, whatever the
// client sent under those names (in any case, any number of times).
func TestUpstreamHeaderReplacesTheClientsFields(t *testing.T) {
	t.Parallel()
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Xfcc", strings.Join(r.Header.Values("X-Forwarded-Client-Cert"), "|"))
		w.Header().Set("X-Seen-Other", strings.Join(r.Header.Values("X-Other"), "|"))
	})
	set := []Field{{Name: "x-forwarded-client-cert", Value: `By=spiffe://td/a;URI=spiffe://td/b`}}
	srv := &Server{Router: RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
		return Upstream{Addr: be.addr(), Header: set}, nil
	})}
	addr := startProxy(t, srv)
	const want = `By=spiffe://td/a;URI=spiffe://td/b`

	tests := []struct {
		name   string
		header string // fields the client sends
	}{
		{name: "sets the field when the client sent none", header: ""},
		{name: "replaces one field the client sent", header: "X-Forwarded-Client-Cert: By=forged\r\n"},
		{name: "replaces several fields in any case", header: "x-forwarded-client-cert: a\r\nX-FORWARDED-CLIENT-CERT: b\r\n"},
	}
	for _, tt := range tests {
		t.Run("over HTTP/1.1 it "+tt.name, func(t *testing.T) {
			c := dial(t, addr)
			resp := c.roundTrip("GET /x HTTP/1.1\r\nHost: a.test\r\nX-Other: kept\r\n" + tt.header + "\r\n")
			if got := resp.Header.Get("X-Seen-Xfcc"); got != want {
				t.Errorf("upstream saw x-forwarded-client-cert %q, want %q", got, want)
			}
			if got := resp.Header.Get("X-Seen-Other"); got != "kept" {
				t.Errorf("upstream saw x-other %q, want the client's field untouched", got)
			}
		})
	}
	t.Run("over HTTP/2 it replaces the field the client sent", func(t *testing.T) {
		req, err := http.NewRequest("GET", "http://"+addr+"/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Add("X-Forwarded-Client-Cert", "forged")
		req.Header.Add("X-Forwarded-Client-Cert", "forged again")
		req.Header.Set("X-Other", "kept")
		resp, err := h2cClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Seen-Xfcc"); got != want {
			t.Errorf("upstream saw x-forwarded-client-cert %q, want %q", got, want)
		}
		if got := resp.Header.Get("X-Seen-Other"); got != "kept" {
			t.Errorf("upstream saw x-other %q, want the client's field untouched", got)
		}
	})
}
