package sniff

import (
	"strings"
	"testing"
)

func TestSniffHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		input    string
		wantKind Kind
		wantHost string
		wantDone bool
	}{
		{
			name:     "takes the Host header of an origin-form request",
			input:    "GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n\r\n",
			wantKind: HTTP, wantHost: "www.example.com", wantDone: true,
		},
		{
			name:     "strips the port from the Host header",
			input:    "GET / HTTP/1.1\r\nHost: api.example.com:8080\r\n\r\n",
			wantKind: HTTP, wantHost: "api.example.com", wantDone: true,
		},
		{
			name:     "lowercases the host and trims spaces around it",
			input:    "GET / HTTP/1.1\r\nhOsT: \t API.Example.COM \r\n\r\n",
			wantKind: HTTP, wantHost: "api.example.com", wantDone: true,
		},
		{
			name:     "takes a bracketed IPv6 Host without brackets or port",
			input:    "GET / HTTP/1.1\r\nHost: [FD00:213::10]:443\r\n\r\n",
			wantKind: HTTP, wantHost: "fd00:213::10", wantDone: true,
		},
		{
			name:     "takes an IPv4 Host",
			input:    "GET / HTTP/1.1\r\nHost: 10.213.0.10:80\r\n\r\n",
			wantKind: HTTP, wantHost: "10.213.0.10", wantDone: true,
		},
		{
			name:     "prefers the authority of an absolute-form target over the Host header",
			input:    "GET http://Proxy.Example.com:3128/path?q=1 HTTP/1.1\r\nHost: other.example.com\r\n\r\n",
			wantKind: HTTP, wantHost: "proxy.example.com", wantDone: true,
		},
		{
			name:     "decides on an absolute-form target without waiting for headers",
			input:    "GET https://user@secure.example.com/ HTTP/1.1\r\n",
			wantKind: HTTP, wantHost: "secure.example.com", wantDone: true,
		},
		{
			name:     "takes the authority of a CONNECT request",
			input:    "CONNECT tunnel.example.com:443 HTTP/1.1\r\nHost: tunnel.example.com:443\r\n\r\n",
			wantKind: HTTP, wantHost: "tunnel.example.com", wantDone: true,
		},
		{
			name:     "returns no host when the request has no Host header",
			input:    "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n",
			wantKind: HTTP, wantHost: "", wantDone: true,
		},
		{
			name:     "returns no host when the request has two Host headers",
			input:    "GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n",
			wantKind: HTTP, wantHost: "", wantDone: true,
		},
		{
			name:     "returns no host for a Host header that is not a host",
			input:    "GET / HTTP/1.1\r\nHost: a.example.com/evil\r\n\r\n",
			wantKind: HTTP, wantHost: "", wantDone: true,
		},
		{
			name:     "returns no host for an unbracketed IPv6 Host",
			input:    "GET / HTTP/1.1\r\nHost: fd00::1\r\n\r\n",
			wantKind: HTTP, wantHost: "", wantDone: true,
		},
		{
			name:     "returns no host for a Host with a port that is not a number",
			input:    "GET / HTTP/1.1\r\nHost: a.example.com:http\r\n\r\n",
			wantKind: HTTP, wantHost: "", wantDone: true,
		},
		{
			name:     "returns no host for a bracketed IPv6 Host with a zone",
			input:    "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]:80\r\n\r\n",
			wantKind: HTTP, wantHost: "", wantDone: true,
		},
		{
			name:     "returns no host for an absolute-form target without an authority",
			input:    "GET urn:isbn:0451450523 HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
			wantKind: HTTP, wantHost: "", wantDone: true,
		},
		{
			name:     "returns no host for a target in no known form",
			input:    "GET index.html HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
			wantKind: HTTP, wantHost: "", wantDone: true,
		},
		{
			name:     "takes the Host header of an asterisk-form OPTIONS request",
			input:    "OPTIONS * HTTP/1.1\r\nHost: star.example.com\r\n\r\n",
			wantKind: HTTP, wantHost: "star.example.com", wantDone: true,
		},
		{
			name:     "returns no host after a broken header line",
			input:    "GET / HTTP/1.1\r\nHost: a.example.com\r\nno colon here\r\n\r\n",
			wantKind: HTTP, wantHost: "", wantDone: true,
		},
		{
			name:     "accepts bare LF line endings",
			input:    "GET / HTTP/1.1\nHost: lf.example.com\n\n",
			wantKind: HTTP, wantHost: "lf.example.com", wantDone: true,
		},
		{
			name:     "skips folded continuation lines",
			input:    "GET / HTTP/1.1\r\nX-Long: a\r\n Host: fold.example.com\r\nHost: real.example.com\r\n\r\n",
			wantKind: HTTP, wantHost: "real.example.com", wantDone: true,
		},
		{
			name:     "keeps waiting for the end of headers after the Host",
			input:    "POST /upload HTTP/1.1\r\nHost: up.example.com\r\nContent-Le",
			wantKind: HTTP, wantHost: "up.example.com", wantDone: false,
		},
		{
			name:     "ignores a Host header cut short",
			input:    "GET / HTTP/1.1\r\nHost: exam",
			wantKind: HTTP, wantHost: "", wantDone: false,
		},
		{
			name:     "waits for the rest of a request line",
			input:    "GET /long/path HTT",
			wantKind: TCP, wantDone: false,
		},
		{
			name:     "recognises the HTTP/2 prior-knowledge preface",
			input:    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04",
			wantKind: HTTP2, wantDone: true,
		},
		{
			name:     "waits for the rest of the HTTP/2 preface",
			input:    "PRI * HTTP/2.0\r\n",
			wantKind: TCP, wantDone: false,
		},
		{
			name:     "refuses HTTP/2.0 outside the preface",
			input:    "GET / HTTP/2.0\r\n\r\n",
			wantKind: TCP, wantDone: true,
		},
		{
			name:     "refuses a method that runs too long",
			input:    strings.Repeat("A", maxMethodLen+1),
			wantKind: TCP, wantDone: true,
		},
		{
			name:     "refuses binary bytes",
			input:    "\x00\x00\x00\x4a\x0a8.0.36\x00",
			wantKind: TCP, wantDone: true,
		},
		{
			name:     "refuses a request line with a control byte in the target",
			input:    "GET /\x01 HTTP/1.1\r\n",
			wantKind: TCP, wantDone: true,
		},
		{
			name:     "refuses HTTP/0.9",
			input:    "GET /\r\n",
			wantKind: TCP, wantDone: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kind, host, done := sniffHTTP([]byte(tt.input))
			if kind != tt.wantKind || host != tt.wantHost || done != tt.wantDone {
				t.Errorf("sniffHTTP(%q) = (%v, %q, %v), want (%v, %q, %v)",
					tt.input, kind, host, done, tt.wantKind, tt.wantHost, tt.wantDone)
			}
		})
	}
}
