package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseGap is the pause between two events: longer than the 60 s after which the engine used to cut
// a silent response, shorter than Envoy's 5 min stream idle timeout, which is the default now.
const sseGap = 90 * time.Second

// TestServerSentEventsSurviveALongPause streams two events 90 s apart through the forward proxy
// with default limits, as an SSE client with slow heartbeats (or a long poll, or a watch) does.
func TestServerSentEventsSurviveALongPause(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 90 s")
	}
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(sseGap):
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: second\n\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: events}
spec:
  hosts: [events.example.com]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %s}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`, port), Config{}, "")

	c := h.client(nil)
	c.Timeout = 0
	resp, err := c.Get("http://events.example.com/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	readEvent := func() (string, error) {
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return ev.String(), err
			}
			if line == "\n" {
				return ev.String(), nil
			}
			ev.WriteString(line)
		}
	}
	if ev, err := readEvent(); err != nil || ev != "data: first\n" {
		t.Fatalf("first event %q, %v", ev, err)
	}
	start := time.Now()
	ev, err := readEvent()
	if err != nil || ev != "data: second\n" {
		t.Fatalf("second event after %v: %q, %v", time.Since(start).Round(time.Second), ev, err)
	}
	if waited := time.Since(start); waited < sseGap-time.Second {
		t.Fatalf("second event came after %v, before the backend sent it", waited)
	}
}
