package admin

import (
	"net/http"
	"strings"
	"testing"
)

// The admin API listens on loopback, which any web page the operator has open can reach: an
// <img src="http://127.0.0.1:15000/logging?level=off"> or a form posted from another site must
// not change the log level. Changes take POST, as Envoy's admin requires, and a browser's
// cross-site POST is refused; curl and proxy-config send neither header and are served.
func TestLoggingRefusesChangesAWebPageCouldForge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		method   string
		headers  map[string]string
		wantCode int
		// wantLevel is the level after the request; the stack starts at info.
		wantLevel string
	}{
		{name: "refuses a change sent by GET, as an image tag would", method: "GET", wantCode: http.StatusMethodNotAllowed, wantLevel: "info"},
		{name: "refuses a POST a browser marks cross-site", method: "POST", headers: map[string]string{"Sec-Fetch-Site": "cross-site"}, wantCode: http.StatusForbidden, wantLevel: "info"},
		{name: "refuses a POST from another origin", method: "POST", headers: map[string]string{"Origin": "http://evil.example"}, wantCode: http.StatusForbidden, wantLevel: "info"},
		{name: "takes a POST from the page's own origin", method: "POST", headers: map[string]string{"Sec-Fetch-Site": "same-origin"}, wantCode: http.StatusOK, wantLevel: "debug"},
		{name: "takes a POST from a command-line client", method: "POST", wantCode: http.StatusOK, wantLevel: "debug"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, nil)
			req, err := http.NewRequest(tc.method, s.admin+"/logging?level=debug", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Errorf("%s /logging?level=debug = %d, want %d", tc.method, resp.StatusCode, tc.wantCode)
			}
			if _, now := s.fetch(t, "GET", "/logging"); !strings.Contains(now, "meshentry: "+tc.wantLevel+"\n") {
				t.Errorf("level after the request: %q, want %s", now, tc.wantLevel)
			}
		})
	}
}
