package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// TestRefusalsNameTheRequestIDInAnswerAndLog checks that a request or tunnel the proxy will not
// forward is answered with its request id, in the X-Request-Id field and the body, and that the
// proxy's own log line names the same id, so an operator handed the id finds the detail.
func TestRefusalsNameTheRequestIDInAnswerAndLog(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t) // knows no names: every lookup is NXDOMAIN
	var logs lockedBuffer
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: gone}
spec:
  hosts: [gone.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, dns.Addr)
	tests := []struct {
		name       string
		req        string
		wantStatus int
		wantID     string // "" for any generated id
		wantLog    string // the message of the proxy's log line, as the text handler writes it
	}{
		{name: "an HTTP request to an undeclared host is refused with its id, in the refusal log line too",
			req:        "GET http://nowhere.example.com/ HTTP/1.1\r\nHost: nowhere.example.com\r\nX-Request-Id: http-refused-1\r\nConnection: close\r\n\r\n",
			wantStatus: 502, wantID: "http-refused-1", wantLog: `msg=refused`},
		{name: "an HTTP request whose endpoints do not resolve is answered with its id, in the failure log line too",
			req:        "GET http://gone.example.com/ HTTP/1.1\r\nHost: gone.example.com\r\nX-Request-Id: http-failed-2\r\nConnection: close\r\n\r\n",
			wantStatus: 503, wantID: "http-failed-2", wantLog: `msg="not forwarded"`},
		{name: "a CONNECT to an undeclared host is refused with its id, in the refusal log line too",
			req:        "CONNECT nowhere.example.com:443 HTTP/1.1\r\nHost: nowhere.example.com:443\r\nX-Request-Id: connect-refused-3\r\n\r\n",
			wantStatus: 403, wantID: "connect-refused-3", wantLog: `msg=refused`},
		{name: "a CONNECT whose endpoints do not resolve is answered with its id, in the failure log line too",
			req:        "CONNECT gone.example.com:443 HTTP/1.1\r\nHost: gone.example.com:443\r\nX-Request-Id: connect-failed-4\r\n\r\n",
			wantStatus: 503, wantID: "connect-failed-4", wantLog: `msg="not forwarded"`},
		{name: "a CONNECT without an id gets a generated one in its answer",
			req:        "CONNECT nowhere.example.com:443 HTTP/1.1\r\nHost: nowhere.example.com:443\r\n\r\n",
			wantStatus: 403, wantLog: `msg=refused`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, h.addr)
			if _, err := io.WriteString(c, tt.req); err != nil {
				t.Fatal(err)
			}
			method, _, _ := strings.Cut(tt.req, " ")
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			id := resp.Header.Get("X-Request-Id")
			if resp.StatusCode != tt.wantStatus || id == "" || tt.wantID != "" && id != tt.wantID {
				t.Fatalf("got %d with x-request-id %q, want %d with %q (empty: any)", resp.StatusCode, id, tt.wantStatus, tt.wantID)
			}
			if body := string(b); !strings.HasSuffix(body, "; request id "+id+"\n") {
				t.Errorf("body %q does not end with its request id %s", body, id)
			}
			if line := logLineWith(logs.String(), "request_id="+id); !strings.Contains(line, tt.wantLog) {
				t.Errorf("no %q log line names request id %s:\n%s", tt.wantLog, id, logs.String())
			}
		})
	}
}

// logLineWith returns the first log line containing s.
func logLineWith(logs, s string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}
