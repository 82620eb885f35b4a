package admin

import (
	"net/http"
	"testing"
)

// DNS rebinding: a web page at evil.example whose name is made to resolve to 127.0.0.1 can read
// the loopback admin API as its own origin. Its requests carry Host: evil.example, which no
// operator's client sends to a loopback socket, so such requests are refused.
func TestLoopbackAdminRefusesForeignHostNames(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	tests := []struct {
		name     string
		host     string
		wantCode int
	}{
		{name: "refuses a name that rebinding points at loopback", host: "evil.example:15000", wantCode: http.StatusForbidden},
		{name: "refuses it without a port too", host: "evil.example", wantCode: http.StatusForbidden},
		{name: "serves the loopback address", host: "127.0.0.1:15000", wantCode: http.StatusOK},
		{name: "serves the IPv6 loopback address", host: "[::1]:15000", wantCode: http.StatusOK},
		{name: "serves localhost, as port forwards send it", host: "localhost:15000", wantCode: http.StatusOK},
		{name: "serves a name under localhost", host: "admin.localhost:15000", wantCode: http.StatusOK},
		{name: "serves any IP literal, as probes send the pod's", host: "10.1.2.3:15000", wantCode: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{"/config_dump", "/ready"} {
				req, err := http.NewRequest("GET", s.admin+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = tc.host
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.wantCode {
					t.Errorf("GET %s with Host %s = %d, want %d", path, tc.host, resp.StatusCode, tc.wantCode)
				}
			}
		})
	}
}
