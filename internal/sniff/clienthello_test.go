package sniff

import (
	"bytes"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseClientHelloAgreesWithCryptoTLS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		config     *tls.Config
		wantServer string
		wantALPN   []string
	}{
		{
			name:       "reads a plain DNS name",
			config:     &tls.Config{ServerName: "api.example.com"},
			wantServer: "api.example.com",
		},
		{
			name:       "lowercases a mixed-case name",
			config:     &tls.Config{ServerName: "Api.Example.COM"},
			wantServer: "api.example.com",
		},
		{
			name:       "reads a cluster-local service name",
			config:     &tls.Config{ServerName: "reviews.bookinfo.svc.cluster.local"},
			wantServer: "reviews.bookinfo.svc.cluster.local",
		},
		{
			name:       "reads an IDN in its punycode form",
			config:     &tls.Config{ServerName: "xn--bcher-kva.example"},
			wantServer: "xn--bcher-kva.example",
		},
		{
			name:       "reads a single-label name",
			config:     &tls.Config{ServerName: "localhost"},
			wantServer: "localhost",
		},
		{
			name:       "returns no name when the client sends no SNI",
			config:     &tls.Config{InsecureSkipVerify: true},
			wantServer: "",
		},
		{
			name:       "returns no name when the client dials an IP address",
			config:     &tls.Config{ServerName: "192.0.2.7"},
			wantServer: "",
		},
		{
			name:       "returns the ALPN protocols in the client's order",
			config:     &tls.Config{ServerName: "grpc.example.com", NextProtos: []string{"h2", "http/1.1"}},
			wantServer: "grpc.example.com",
			wantALPN:   []string{"h2", "http/1.1"},
		},
		{
			name:       "caps TLS at 1.2 and still finds the name",
			config:     &tls.Config{ServerName: "legacy.example.com", MaxVersion: tls.VersionTLS12},
			wantServer: "legacy.example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hello := captureClientHello(t, tt.config)
			got, err := ParseClientHello(hello)
			if err != nil {
				t.Fatalf("ParseClientHello: %v", err)
			}
			if got.ServerName != tt.wantServer {
				t.Errorf("ServerName = %q, want %q", got.ServerName, tt.wantServer)
			}
			if !slices.Equal(got.ALPN, tt.wantALPN) {
				t.Errorf("ALPN = %q, want %q", got.ALPN, tt.wantALPN)
			}
			seen := serverView(t, hello)
			if !strings.EqualFold(seen.ServerName, got.ServerName) {
				t.Errorf("crypto/tls server saw %q, ParseClientHello %q", seen.ServerName, got.ServerName)
			}
			if !slices.Equal(seen.SupportedProtos, got.ALPN) {
				t.Errorf("crypto/tls server saw ALPN %q, ParseClientHello %q", seen.SupportedProtos, got.ALPN)
			}
		})
	}
}

func TestParseClientHelloReassemblesRecords(t *testing.T) {
	t.Parallel()
	hello := captureClientHello(t, &tls.Config{ServerName: "split.example.com", NextProtos: []string{"h2"}})
	big := helloSpec{exts: []ext{
		sniExt(hostName("big.example.com")),
		// A padding extension (RFC 7685) pushes the ClientHello past one record's 16 KiB limit.
		{typ: 21, data: make([]byte, 20000)},
	}}
	tests := []struct {
		name       string
		input      []byte
		wantServer string
	}{
		{name: "reads a ClientHello split into 100-byte records", input: refragment(t, hello, 100), wantServer: "split.example.com"},
		{name: "reads a ClientHello split into 1-byte records", input: refragment(t, hello, 1), wantServer: "split.example.com"},
		{name: "reads a ClientHello whose handshake header spans two records", input: refragment(t, hello, 2), wantServer: "split.example.com"},
		{name: "reads a ClientHello larger than one record", input: big.record(), wantServer: "big.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseClientHello(tt.input)
			if err != nil {
				t.Fatalf("ParseClientHello: %v", err)
			}
			if got.ServerName != tt.wantServer {
				t.Errorf("ServerName = %q, want %q", got.ServerName, tt.wantServer)
			}
		})
	}
}

func TestParseClientHelloAsksForMoreUntilTheLastByte(t *testing.T) {
	t.Parallel()
	hello := captureClientHello(t, &tls.Config{ServerName: "more.example.com"})
	tests := []struct {
		name  string
		input []byte
	}{
		{name: "asks for more at every cut of a one-record ClientHello", input: hello},
		{name: "asks for more at every cut of a fragmented ClientHello", input: refragment(t, hello, 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for n := range len(tt.input) {
				if _, err := ParseClientHello(tt.input[:n]); !errors.Is(err, ErrNeedMore) {
					t.Fatalf("ParseClientHello(first %d of %d bytes) = %v, want ErrNeedMore", n, len(tt.input), err)
				}
			}
			if _, err := ParseClientHello(tt.input); err != nil {
				t.Fatalf("ParseClientHello(all bytes) = %v", err)
			}
		})
	}
}

func TestParseClientHelloSynthetic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		input      []byte
		wantServer string
		wantALPN   []string
		wantErr    error
	}{
		{
			name:       "skips server_name entries of unknown type",
			input:      helloSpec{exts: []ext{sniExt(sniEntry{typ: 7, name: "x"}, hostName("real.example.com"))}}.record(),
			wantServer: "real.example.com",
		},
		{
			name:  "accepts a ClientHello without an extensions block",
			input: helloSpec{noExtensions: true}.record(),
		},
		{
			name:     "keeps ALPN names that are not text",
			input:    helloSpec{exts: []ext{alpnExt("\x00\xff", "h2")}}.record(),
			wantALPN: []string{"\x00\xff", "h2"},
		},
		{
			name:    "refuses plain HTTP as not TLS",
			input:   []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
			wantErr: ErrNotTLS,
		},
		{
			name:    "refuses an SSLv2-style hello as not TLS",
			input:   []byte{0x80, 0x2e, 0x01, 0x03, 0x01},
			wantErr: ErrNotTLS,
		},
		{
			name:    "refuses a handshake record with a version major other than 3",
			input:   []byte{recordTypeHandshake, 2, 0, 0, 10},
			wantErr: ErrNotTLS,
		},
		{
			name:    "refuses a handshake that is not a ClientHello",
			input:   []byte{recordTypeHandshake, 3, 3, 0, 4, 2, 0, 0, 0},
			wantErr: ErrNotTLS,
		},
		{
			name:    "asks for more on an empty input",
			input:   nil,
			wantErr: ErrNeedMore,
		},
		{
			name:    "refuses an empty record",
			input:   []byte{recordTypeHandshake, 3, 1, 0, 0},
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses a record longer than 16 KiB",
			input:   []byte{recordTypeHandshake, 3, 1, 0x40, 0x01},
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses a ClientHello declared over the size limit before reading it",
			input:   []byte{recordTypeHandshake, 3, 1, 0x40, 0x00, handshakeClientHello, 0x01, 0x00, 0x01},
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses bytes after the ClientHello in its record",
			input:   handshakeRecords(append(helloSpec{}.message(), 0), maxRecordLen),
			wantErr: ErrMalformed,
		},
		{
			name: "refuses a different record type in the middle of a ClientHello",
			input: func() []byte {
				rec := handshakeRecords(helloSpec{}.message(), 10)
				rec[15] = 23 // the second record becomes application_data
				return rec
			}(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses a session id longer than 32 bytes",
			input:   helloSpec{sessionID: make([]byte, 33)}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses an odd cipher_suites length",
			input:   helloSpec{suites: []byte{0x13, 0x01, 0x13}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses an empty compression list",
			input:   helloSpec{compression: []byte{}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses bytes after the extensions block",
			input:   helloSpec{trailing: []byte{0}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses an extension longer than the block",
			input:   helloSpec{rawExts: []byte{0, 99, 0, 10, 1, 2}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses two server_name extensions",
			input:   helloSpec{exts: []ext{sniExt(hostName("a.example")), sniExt(hostName("b.example"))}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses two host_name entries",
			input:   helloSpec{exts: []ext{sniExt(hostName("a.example"), hostName("b.example"))}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses an empty server_name list",
			input:   helloSpec{exts: []ext{{typ: extServerName, data: []byte{0, 0}}}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses a server_name list shorter than its extension",
			input:   helloSpec{exts: []ext{{typ: extServerName, data: append(sniExt(hostName("a.example")).data, 0)}}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses an empty host_name",
			input:   helloSpec{exts: []ext{sniExt(hostName(""))}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses a host_name with a control byte",
			input:   helloSpec{exts: []ext{sniExt(hostName("evil\n.example"))}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses a host_name with non-ASCII bytes",
			input:   helloSpec{exts: []ext{sniExt(hostName("bücher.example"))}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses a host_name with a trailing dot",
			input:   helloSpec{exts: []ext{sniExt(hostName("example.com."))}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses a host_name longer than 255 bytes",
			input:   helloSpec{exts: []ext{sniExt(hostName(strings.Repeat("a", 256)))}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses an empty ALPN list",
			input:   helloSpec{exts: []ext{{typ: extALPN, data: []byte{0, 0}}}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses an empty ALPN protocol name",
			input:   helloSpec{exts: []ext{alpnExt("h2", "")}}.record(),
			wantErr: ErrMalformed,
		},
		{
			name:    "refuses two ALPN extensions",
			input:   helloSpec{exts: []ext{alpnExt("h2"), alpnExt("http/1.1")}}.record(),
			wantErr: ErrMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			orig := bytes.Clone(tt.input)
			got, err := ParseClientHello(tt.input)
			if !bytes.Equal(orig, tt.input) {
				t.Fatal("ParseClientHello modified its input")
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseClientHello error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseClientHello: %v", err)
			}
			if got.ServerName != tt.wantServer {
				t.Errorf("ServerName = %q, want %q", got.ServerName, tt.wantServer)
			}
			if !slices.Equal(got.ALPN, tt.wantALPN) {
				t.Errorf("ALPN = %q, want %q", got.ALPN, tt.wantALPN)
			}
		})
	}
}

func TestMalformedErrorsSayWhatIsWrong(t *testing.T) {
	t.Parallel()
	_, err := ParseClientHello(helloSpec{sessionID: make([]byte, 33)}.record())
	if err == nil || !strings.Contains(err.Error(), "legacy_session_id length 33") {
		t.Fatalf("error = %v, want one naming the session id length", err)
	}
}

func BenchmarkParseClientHello(b *testing.B) {
	hello := captureClientHello(b, &tls.Config{ServerName: "reviews.bookinfo.svc.cluster.local", NextProtos: []string{"h2", "http/1.1"}})
	inputs := []struct {
		name  string
		input []byte
	}{
		{name: "one record", input: hello},
		{name: "512-byte records", input: refragment(b, hello, 512)},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.input)))
			for b.Loop() {
				if _, err := ParseClientHello(in.input); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
