package sniff

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// prefixCuts returns the prefix lengths of an n-byte input to re-check: all of them for short inputs,
// and an even spread plus the last few for longer ones. Checking every cut of every input made each
// execution quadratic, and the fuzzer spent most of its time minimizing instead of exploring.
func prefixCuts(n int) []int {
	const spread, tail = 16, 4
	if n <= spread+tail {
		cuts := make([]int, n)
		for i := range cuts {
			cuts[i] = i
		}
		return cuts
	}
	cuts := make([]int, 0, spread+tail)
	for i := range spread {
		cuts = append(cuts, i*(n-tail)/spread)
	}
	for i := n - tail; i < n; i++ {
		cuts = append(cuts, i)
	}
	return cuts
}

func FuzzParseClientHello(f *testing.F) {
	hellos := [][]byte{
		captureClientHello(f, &tls.Config{ServerName: "fuzz.example.com", NextProtos: []string{"h2", "http/1.1"}}),
		captureClientHello(f, &tls.Config{InsecureSkipVerify: true}),
		captureClientHello(f, &tls.Config{ServerName: "Legacy.Example.com", MaxVersion: tls.VersionTLS12}),
		helloSpec{exts: []ext{sniExt(sniEntry{typ: 3, name: "x"}, hostName("syn.example"))}}.record(),
		helloSpec{noExtensions: true}.record(),
	}
	for _, h := range hellos {
		f.Add(h)
		f.Add(refragment(f, h, 64))
		f.Add(refragment(f, h, 1)[:40])
		for _, cut := range []int{1, 5, 9, 43, len(h) / 2, len(h) - 1} {
			if cut < len(h) {
				f.Add(h[:cut])
			}
		}
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"))
	f.Add([]byte{recordTypeHandshake, 3, 1, 0xff, 0xff, 1, 0xff, 0xff, 0xff})
	f.Add([]byte{recordTypeHandshake, 3, 1, 0, 1, 1, recordTypeHandshake, 3, 1, 0, 3, 0, 0, 0})
	f.Add([]byte{0x80, 0x2e, 0x01, 0x03, 0x01})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		h, err := ParseClientHello(data)
		if !bytes.Equal(orig, data) {
			t.Fatal("ParseClientHello modified its input")
		}
		switch {
		case err == nil:
			checkHello(t, h)
		case errors.Is(err, ErrNeedMore), errors.Is(err, ErrNotTLS), errors.Is(err, ErrMalformed):
		default:
			t.Fatalf("error %v is none of ErrNeedMore, ErrNotTLS, ErrMalformed", err)
		}

		// An answer other than ErrNeedMore on a prefix must be the answer for the whole input, or Sniff
		// would decide differently depending on how the bytes happened to arrive.
		for _, n := range prefixCuts(len(data)) {
			ph, perr := ParseClientHello(data[:n])
			if errors.Is(perr, ErrNeedMore) {
				continue
			}
			if !sameHelloResult(ph, perr, h, err) {
				t.Fatalf("first %d bytes give (%+v, %v), all %d give (%+v, %v)", n, ph, perr, len(data), h, err)
			}
		}

		// A ClientHello that parses must parse the same however it is cut into records.
		if err == nil {
			msg, merr := handshakeMessage(data)
			if merr != nil {
				t.Fatalf("handshakeMessage failed after ParseClientHello succeeded: %v", merr)
			}
			size := 1 + len(msg)%397
			fh, ferr := ParseClientHello(handshakeRecords(msg, size))
			if ferr != nil || !sameHelloResult(fh, nil, h, nil) {
				t.Fatalf("re-cut into %d-byte records gives (%+v, %v), want (%+v, nil)", size, fh, ferr, h)
			}
		}
	})
}

func checkHello(t *testing.T, h Hello) {
	t.Helper()
	if h.ServerName != strings.ToLower(h.ServerName) {
		t.Fatalf("ServerName %q is not lowercase", h.ServerName)
	}
	if h.ServerName != "" && checkServerName([]byte(h.ServerName)) != nil {
		t.Fatalf("ServerName %q is not a valid host_name", h.ServerName)
	}
	for _, p := range h.ALPN {
		if p == "" {
			t.Fatal("ALPN holds an empty protocol name")
		}
	}
}

func sameHelloResult(a Hello, aerr error, b Hello, berr error) bool {
	if (aerr == nil) != (berr == nil) {
		return false
	}
	if aerr != nil {
		for _, sentinel := range []error{ErrNotTLS, ErrMalformed} {
			if errors.Is(aerr, sentinel) != errors.Is(berr, sentinel) {
				return false
			}
		}
		return aerr.Error() == berr.Error()
	}
	return a.ServerName == b.ServerName && slices.Equal(a.ALPN, b.ALPN)
}

func FuzzSniffHTTP(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
		"GET http://proxy.example.com:3128/x HTTP/1.1\r\nHost: other\r\n\r\n",
		"CONNECT [fd00::1]:443 HTTP/1.1\r\n\r\n",
		"POST /p HTTP/1.0\nhost: A.B:80\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nX: y\r\n folded\r\nHost: [::1]\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: exa",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nXX",
		"OPTIONS * HTTP/1.1\r\nHost: star.example\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01",
		"\x00\x00\x00\x08\x04\xd2\x16\x2f",
		"",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		kind, host, done := sniffHTTP(data)
		if host != "" {
			if kind != HTTP {
				t.Fatalf("host %q with kind %v", host, kind)
			}
			checkHost(t, host)
		}
		if kind == HTTP2 && !done {
			t.Fatal("HTTP2 before the whole preface arrived")
		}
		for _, n := range prefixCuts(len(data)) {
			pk, ph, pdone := sniffHTTP(data[:n])
			if pdone && (pk != kind || ph != host || !done) {
				t.Fatalf("first %d bytes decide (%v, %q), all %d give (%v, %q, done=%v)",
					n, pk, ph, len(data), kind, host, done)
			}
		}
		// classify must agree with the parser it dispatches to for everything but a TLS record.
		if len(data) > 0 && data[0] != recordTypeHandshake {
			r, cdone := classify(data)
			if r.Kind != kind || r.Host != host || cdone != done {
				t.Fatalf("classify = (%v, %q, %v), sniffHTTP = (%v, %q, %v)", r.Kind, r.Host, cdone, kind, host, done)
			}
		}
	})
}

// checkHost fails unless host is what a router can match: a lowercase DNS name or an IP address.
func checkHost(t *testing.T, host string) {
	t.Helper()
	if host != strings.ToLower(host) {
		t.Fatalf("host %q is not lowercase", host)
	}
	if strings.Contains(host, ":") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			t.Fatalf("host %q has a colon but is not an IPv6 address", host)
		}
		return
	}
	for _, ch := range []byte(host) {
		if !isAlpha(ch) && !isDigit(ch) && ch != '-' && ch != '.' && ch != '_' {
			t.Fatalf("host %q holds byte %q", host, ch)
		}
	}
}
