package httpfwd

import (
	"net/http"
	"regexp"
	"sync/atomic"
	"testing"
)

func TestCORSPolicy(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	policy := &CORS{
		Origins: []OriginMatch{
			{Exact: "https://app.example"},
			{Prefix: "https://dev."},
			{Regex: regexp.MustCompile(`^https://[a-z]+\.corp\.example$`)},
		},
		AllowMethods: "GET, POST", AllowHeaders: "x-token", ExposeHeaders: "x-trace", MaxAge: "86400", AllowCredentials: true,
	}
	tests := []struct {
		name          string
		request       string
		wantForwarded bool
		wantHead      map[string]string
	}{
		{
			name:    "a preflight from an exact origin is answered here",
			request: "OPTIONS /r HTTP/1.1\r\nHost: svc\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n",
			wantHead: map[string]string{
				"Access-Control-Allow-Origin": "https://app.example", "Access-Control-Allow-Methods": "GET, POST",
				"Access-Control-Allow-Headers": "x-token", "Access-Control-Max-Age": "86400", "Access-Control-Allow-Credentials": "true",
			},
		},
		{
			name:          "a request from a prefix origin is forwarded with the CORS fields",
			request:       "GET /r HTTP/1.1\r\nHost: svc\r\nOrigin: https://dev.team\r\n\r\n",
			wantForwarded: true,
			wantHead:      map[string]string{"Access-Control-Allow-Origin": "https://dev.team", "Access-Control-Expose-Headers": "x-trace"},
		},
		{
			name:          "a regex origin is allowed",
			request:       "GET /r HTTP/1.1\r\nHost: svc\r\nOrigin: https://hr.corp.example\r\n\r\n",
			wantForwarded: true,
			wantHead:      map[string]string{"Access-Control-Allow-Origin": "https://hr.corp.example"},
		},
		{
			name:          "a preflight from another origin passes through without CORS fields",
			request:       "OPTIONS /r HTTP/1.1\r\nHost: svc\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n",
			wantForwarded: true,
			wantHead:      map[string]string{"Access-Control-Allow-Origin": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := &Actions{CORS: policy}
			addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{b.addr()}, act: act}})
			before := hits.Load()
			resp := dial(t, addr).roundTrip(tt.request)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if forwarded := hits.Load() > before; forwarded != tt.wantForwarded {
				t.Errorf("forwarded %v, want %v", forwarded, tt.wantForwarded)
			}
			for k, v := range tt.wantHead {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
