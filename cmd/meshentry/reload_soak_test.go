package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// soakConfig renders the configs the soak test writes: change i declares the steady host with a
// changing set of endpoints, a host renamed with every change (marker-i), the CONNECT tunnel's
// host, fillers up to the config's size, and, for an invalid change, a misspelled document last.
type soakConfig struct {
	backends []int // ports of the steady host's candidate endpoints; the first is always in
	echoPort int
	fillers  int
}

func (s soakConfig) render(i int, invalid bool) string {
	var b strings.Builder
	b.WriteString("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: steady}\nspec:\n  hosts: [steady.example.com]\n" +
		"  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints:\n")
	for k, port := range s.backends {
		// Endpoint k>0 is in change i when bit k-1 of i is set: endpoints come and go.
		if k == 0 || i&(1<<(k-1)) != 0 {
			fmt.Fprintf(&b, "  - {address: 127.0.0.1, ports: {http: %d}}\n", port)
		}
	}
	fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: tunnel}\nspec:\n  hosts: [tunnel.example.com]\n"+
		"  ports: [{number: 443, name: tcp, protocol: TCP, targetPort: %d}]\n  resolution: STATIC\n  endpoints: [{address: 127.0.0.1}]\n", s.echoPort)
	fmt.Fprintf(&b, "---\n%s", serviceEntry("marker", fmt.Sprintf("marker-%d.example.com", i), s.backends[0]))
	for k := range s.fillers {
		fmt.Fprintf(&b, "---\n%s", serviceEntry(fmt.Sprintf("filler-%d", k), fmt.Sprintf("filler-%d.example.com", k), s.backends[0]))
	}
	if invalid {
		b.WriteString("---\n" + misspelled(fmt.Sprintf("bad-%d", i)))
	}
	return b.String()
}

// soakLoad is the traffic kept up while the config changes.
type soakLoad struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	ok, fail atomic.Int64
	echoes   atomic.Int64
	broken   atomic.Int64
	mu       sync.Mutex
	errs     []string
}

func (l *soakLoad) failed(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, fmt.Sprintf(format, args...))
	}
}

// httpClients runs n keep-alive clients requesting the steady host in a loop.
func (l *soakLoad) httpClients(r *reloadRun, n int) {
	for c := range n {
		client := r.client()
		l.wg.Go(func() {
			defer client.CloseIdleConnections()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := client.Get(fmt.Sprintf("http://steady.example.com/c%d", c))
				if err != nil {
					l.fail.Add(1)
					l.failed("client %d: %v", c, err)
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					l.fail.Add(1)
					l.failed("client %d: status %d, body %v", c, resp.StatusCode, err)
					continue
				}
				l.ok.Add(1)
			}
		})
	}
}

// tunnels keeps each conn echoing a line every 50 ms; any error or wrong echo counts as broken.
func (l *soakLoad) tunnels(name string, conns []net.Conn) {
	for k, c := range conns {
		l.wg.Go(func() {
			defer c.Close()
			br := bufio.NewReader(c)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				line := fmt.Sprintf("%s %d ping %d\n", name, k, n)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, line); err != nil {
					l.broken.Add(1)
					l.failed("%s tunnel %d: write: %v", name, k, err)
					return
				}
				got, err := br.ReadString('\n')
				if err != nil || got != line {
					l.broken.Add(1)
					l.failed("%s tunnel %d: echo %q, %v", name, k, got, err)
					return
				}
				l.echoes.Add(1)
			}
		})
	}
}

// connectTunnel opens a CONNECT tunnel to authority through the forward proxy at proxy.
func connectTunnel(t *testing.T, proxy net.Addr, authority string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", proxy.String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 || br.Buffered() != 0 {
		c.Close()
		t.Fatalf("CONNECT %s: %v %v", authority, resp, err)
	}
	return c
}

// capturedProxy is a second proxy, capturing traffic in a network namespace, that loads the
// soak's file too.
type capturedProxy struct {
	// conns are captured TCP connections through it, to keep echoing.
	conns []net.Conn
	// finalDoc is a document whose route serves reports working: the proof that it reloaded.
	finalDoc string
	serves   func() bool
}

// soakResult is what a soak run measured.
type soakResult struct {
	latencies []time.Duration // file write to the new snapshot serving, per valid change
}

func (s soakResult) percentile(p float64) time.Duration {
	d := slices.Clone(s.latencies)
	slices.Sort(d)
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// rewrite writes change i of cfg and waits until it is served or refused, returning how long the
// valid change took to serve.
func rewrite(t *testing.T, r *reloadRun, cfg soakConfig, i int, refused *int, poll *http.Client) time.Duration {
	t.Helper()
	invalid := i%10 == 0
	content := cfg.render(i, invalid)
	start := time.Now()
	if i%3 == 0 {
		// Some in place, as `echo > file` does; the rest renamed over, as editors and kubectl do.
		if err := os.WriteFile(r.path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		replace(t, r.path, content)
	}
	marker := fmt.Sprintf("http://marker-%d.example.com/", i)
	if !invalid {
		pollUntil(t, fmt.Sprintf("change %d is served", i), func() bool { return status(poll, marker) == 200 })
		return time.Since(start)
	}
	*refused++
	pollUntil(t, fmt.Sprintf("change %d is refused", i), func() bool {
		return strings.Count(r.log.String(), "config reload refused") == *refused
	})
	want := fmt.Sprintf("%s:%d: ServiceEntry default/bad-%d: spec.resolutoin: unknown field", r.path, lineOf(content, "  resolutoin:"), i)
	if !strings.Contains(r.log.String(), want) {
		t.Fatalf("change %d: the refusal does not name %q", i, want)
	}
	if code := status(poll, marker); code != 502 {
		t.Fatalf("change %d was refused but its new host answers %d, want 502", i, code)
	}
	return 0
}

// runSoak rewrites the config of a running proxy 100 times under load; see TestReloadSoak.
// captured, when set, opens further tunnels (through a captured proxy reloading the same file).
func runSoak(t *testing.T, fillers int, captured func(path string) *capturedProxy) soakResult {
	cfg := soakConfig{echoPort: echoListener(t).Addr().(*net.TCPAddr).Port, fillers: fillers}
	for k := range 4 {
		cfg.backends = append(cfg.backends, backend.HTTP(t, fmt.Sprintf("b%d", k), "127.0.0.1:0").Port())
	}
	r := startReloadRun(t, cfg.render(0, false), reloadFlags{checkInterval: 5 * time.Second})
	load := &soakLoad{stop: make(chan struct{})}
	var tunnels []net.Conn
	for range 3 {
		tunnels = append(tunnels, connectTunnel(t, r.bound["forward proxy"], "tunnel.example.com:443"))
	}
	load.tunnels("CONNECT", tunnels)
	var cp *capturedProxy
	if captured != nil {
		cp = captured(r.path)
		load.tunnels("captured", cp.conns)
	}
	load.httpClients(r, 4)
	poll := r.client()
	var res soakResult
	refused := 0
	for i := 1; i <= 100; i++ {
		if d := rewrite(t, r, cfg, i, &refused, poll); d > 0 {
			res.latencies = append(res.latencies, d)
		}
	}
	close(load.stop)
	load.wg.Wait()
	t.Logf("%d entries: reload latency p50 %v, p99 %v, max %v over %d accepted changes; %d refused; %d requests ok, %d failed; %d tunnel echoes, %d tunnels broken",
		fillers+3, res.percentile(0.5), res.percentile(0.99), res.percentile(1), len(res.latencies), refused,
		load.ok.Load(), load.fail.Load(), load.echoes.Load(), load.broken.Load())
	if load.fail.Load() != 0 || load.broken.Load() != 0 {
		t.Errorf("%d failed requests and %d broken tunnels across the reloads, want none: %v", load.fail.Load(), load.broken.Load(), load.errs)
	}
	if load.ok.Load() == 0 || load.echoes.Load() == 0 {
		t.Errorf("no load ran: %d requests, %d echoes", load.ok.Load(), load.echoes.Load())
	}
	if refused != 10 || strings.Count(r.log.String(), "config reloaded") != 90 {
		t.Errorf("%d refused and %d accepted reloads logged, want 10 and 90", refused, strings.Count(r.log.String(), "config reloaded"))
	}
	if cp != nil {
		// The captured proxy reloaded the same file all along; one more change shows it still does.
		replace(t, r.path, cfg.render(101, false)+"---\n"+cp.finalDoc)
		pollUntil(t, "the captured proxy serves the final change", cp.serves)
	}
	return res
}

// TestReloadSoak rewrites a 10-entry config 100 times (endpoints added and removed, a host
// renamed each time, every tenth change invalid) under steady keep-alive HTTP load and
// long-lived CONNECT tunnels: no request may fail, no tunnel break, every invalid change must be
// refused with its file:line, and every valid one served. On linux as root, captured TCP
// tunnels through a second proxy reloading the same file are kept up too (reload_soak_linux_test.go).
func TestReloadSoak(t *testing.T) {
	t.Parallel()
	runSoak(t, 7, capturedSoak(t))
}

// TestReloadSoak10k is the same with 10,000 entries; it is slow, so it runs only when asked:
// MESHENTRY_SOAK_10K=1 go test -run TestReloadSoak10k ./cmd/meshentry
func TestReloadSoak10k(t *testing.T) {
	if testing.Short() || os.Getenv("MESHENTRY_SOAK_10K") == "" {
		t.Skip("set MESHENTRY_SOAK_10K=1 to run the 10,000-entry soak")
	}
	runSoak(t, 10_000-3, nil)
}

// lineOf returns the line number in content at which needle first occurs.
func lineOf(content, needle string) int {
	i := strings.Index(content, needle)
	if i < 0 {
		return 0
	}
	return strings.Count(content[:i], "\n") + 1
}
