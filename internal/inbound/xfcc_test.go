package inbound

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"net"
	"net/url"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshentry/meshentry/internal/httpfwd"
)

func TestXFCCElementIsWrittenAsEnvoyWritesIt(t *testing.T) {
	t.Parallel()
	local := spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/httpbin")
	raw := []byte("leaf DER stands in here")
	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:])
	uri := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name  string
		local spiffeid.ID
		leaf  *x509.Certificate
		want  string
	}{
		{name: "writes By, Hash, an empty quoted Subject and the URI for an Istio workload certificate",
			local: local, leaf: &x509.Certificate{Raw: raw, URIs: []*url.URL{uri("spiffe://cluster.local/ns/shop/sa/sleep")}},
			want: `By=spiffe://cluster.local/ns/shop/sa/httpbin;Hash=` + hash + `;Subject="";URI=spiffe://cluster.local/ns/shop/sa/sleep`},
		{name: "adds one DNS entry per DNS SAN after the URI",
			local: local, leaf: &x509.Certificate{Raw: raw, URIs: []*url.URL{uri("spiffe://td/a")}, DNSNames: []string{"a.test", "b.test"}},
			want: `By=spiffe://cluster.local/ns/shop/sa/httpbin;Hash=` + hash + `;Subject="";URI=spiffe://td/a;DNS=a.test;DNS=b.test`},
		{name: "quotes a subject in RFC 2253 form, escaping its double quotes",
			local: local, leaf: &x509.Certificate{Raw: raw, Subject: pkix.Name{CommonName: `a "b"`, Organization: []string{"Shop, Inc"}}},
			want: `By=spiffe://cluster.local/ns/shop/sa/httpbin;Hash=` + hash + `;Subject="CN=a \"b\",O=Shop\, Inc";URI=`},
		{name: "leaves By out when the listener has no URI SAN",
			leaf: &x509.Certificate{Raw: raw, URIs: []*url.URL{uri("spiffe://td/a")}},
			want: `Hash=` + hash + `;Subject="";URI=spiffe://td/a`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := xfccElement(tt.local, tt.leaf); got != tt.want {
				t.Errorf("got\n %s\nwant\n %s", got, tt.want)
			}
		})
	}
}

func TestRouteAllocatesNothingForARequestWithoutXFCC(t *testing.T) {
	s := &Server{up: httpfwd.Upstream{Addr: "127.0.0.1:8080", Key: "127.0.0.1:8080"}}
	peer := &peerAddr{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, element: "URI=spiffe://td/a"}
	peer.set = []httpfwd.Field{{Name: XFCCHeader, Value: peer.element}}
	req := &httpfwd.RequestHead{RemoteAddr: peer}
	var up httpfwd.Upstream
	allocs := testing.AllocsPerRun(1000, func() { up, _ = s.Route(req, 0) })
	if allocs != 0 {
		t.Errorf("Route allocated %v times per request", allocs)
	}
	if len(up.Header) != 1 || up.Header[0].Value != peer.element {
		t.Errorf("Route set %v, want the peer's element", up.Header)
	}
}
