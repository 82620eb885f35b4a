package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	var pending atomic.Pointer[[]string]
	pending.Store(&[]string{"capture listener"})
	srv := httptest.NewServer(Handler(Config{NotReady: func() []string { return *pending.Load() }, Pprof: true}))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	t.Run("says it is alive", func(t *testing.T) {
		if code, body := get("/healthz"); code != 200 || body != "ok\n" {
			t.Fatalf("/healthz = %d %q", code, body)
		}
	})
	t.Run("names what is not ready", func(t *testing.T) {
		if code, body := get("/ready"); code != 503 || !strings.Contains(body, "capture listener") {
			t.Fatalf("/ready = %d %q", code, body)
		}
	})
	t.Run("serves Go profiles", func(t *testing.T) {
		if code, body := get("/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
			t.Fatalf("goroutine profile = %d %q", code, body[:min(len(body), 80)])
		}
	})
	t.Run("turns ready when nothing is pending", func(t *testing.T) {
		pending.Store(&[]string{})
		if code, body := get("/ready"); code != 200 || body != "ready\n" {
			t.Fatalf("/ready = %d %q", code, body)
		}
	})
}
