// Command kube10k measures meshentry with N ServiceEntries from a real kube-apiserver against the
// same N from a file, in one run: the time from the last create to a snapshot holding all of
// them, the time to list them at startup, and meshentry's RSS in each case. bench/kube10k.sh
// builds what it needs and runs it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/kubeapi"
)

func main() {
	bin := flag.String("meshentry", "bench/out/meshentry", "meshentry binary")
	n := flag.Int("n", 10000, "ServiceEntries")
	workers := flag.Int("workers", 16, "concurrent creates")
	flag.Parse()
	if err := measure(*bin, *n, *workers); err != nil {
		log.Fatal(err)
	}
}

func measure(bin string, n, workers int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "kube10k-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := kubeapi.Start(ctx, dir)
	if err != nil {
		return err
	}
	defer srv.Stop()

	file := filepath.Join(dir, "entries.yaml")
	if err := writeFile(file, n); err != nil {
		return err
	}
	fmt.Printf("meshentry with %d ServiceEntries (machine shared with other jobs; figures from one run)\n", n)
	p, err := start(bin, "-f", file)
	if err != nil {
		return err
	}
	took, err := p.waitFor("registry loaded", fmt.Sprintf("services=%d", n), 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("files: startup load %v, RSS %s\n", took.Round(time.Millisecond), p.rss())
	p.stop()

	k, err := start(bin, "--kube", "--kubeconfig", srv.Kubeconfig, "--kube-namespace", "default")
	if err != nil {
		return err
	}
	if _, err := k.waitFor("registry loaded", "", 2*time.Minute); err != nil {
		return err
	}
	created := time.Now()
	if err := createAll(ctx, srv, n, workers); err != nil {
		return err
	}
	last := time.Now()
	fmt.Printf("kube: %d creates through the API server took %v (%d workers)\n", n, last.Sub(created).Round(time.Millisecond), workers)
	seen, err := k.waitSince("config compiled", fmt.Sprintf("services=%d", n), last, 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("kube: last create to a snapshot holding all %d: %v, RSS %s\n", n, seen.Round(time.Millisecond), k.rss())
	k.stop()

	r, err := start(bin, "--kube", "--kubeconfig", srv.Kubeconfig, "--kube-namespace", "default")
	if err != nil {
		return err
	}
	took, err = r.waitFor("registry loaded", fmt.Sprintf("services=%d", n), 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("kube: startup with %d listed %v, RSS %s\n", n, took.Round(time.Millisecond), r.rss())
	r.stop()
	return nil
}

func entry(i int) string {
	return fmt.Sprintf(`{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":"se-%d","namespace":"default"},`+
		`"spec":{"hosts":["se-%d.bench.example.com"],"location":"MESH_EXTERNAL","ports":[{"number":80,"name":"http","protocol":"HTTP"}],`+
		`"resolution":"STATIC","endpoints":[{"address":"127.0.0.1","ports":{"http":%d}}]}}`, i, i, 20000+i%1000)
}

// writeFile writes the same entries as createAll, as one YAML stream (JSON is YAML).
func writeFile(path string, n int) error {
	var b strings.Builder
	for i := range n {
		b.WriteString(entry(i))
		b.WriteString("\n---\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func createAll(ctx context.Context, srv *kubeapi.Server, n, workers int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := srv.Post(ctx, "/apis/networking.istio.io/v1/namespaces/default/serviceentries", []byte(entry(i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// proc is a running meshentry whose log lines are read as they come.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	mu      sync.Mutex
	lines   []timedLine
	wake    chan struct{}
}

type timedLine struct {
	at   time.Time
	text string
}

func start(bin string, args ...string) (*proc, error) {
	args = append([]string{"run", "--listen", "127.0.0.1:0", "--admin", ""}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, wake: make(chan struct{}, 1)}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start meshentry: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, timedLine{time.Now(), sc.Text()})
			p.mu.Unlock()
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}()
	return p, nil
}

// waitFor returns how long after the start a line with both substrings came.
func (p *proc) waitFor(msg, field string, limit time.Duration) (time.Duration, error) {
	return p.waitSince(msg, field, p.started, limit)
}

// waitSince returns how long after since a line with both substrings came.
func (p *proc) waitSince(msg, field string, since time.Time, limit time.Duration) (time.Duration, error) {
	deadline := time.After(limit)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.Contains(l.text, `msg="`+msg+`"`) && strings.Contains(l.text, field) {
				p.mu.Unlock()
				return max(0, l.at.Sub(since)), nil
			}
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return 0, fmt.Errorf("no %q line with %q within %v; log:\n%s", msg, field, limit, p.log())
		}
	}
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines[max(0, len(p.lines)-20):] {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// rss reads VmRSS and VmHWM (the peak) from /proc.
func (p *proc) rss() string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return "unknown"
	}
	var rss, hwm string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rss = f[1] + " kB"
		}
		if len(f) >= 2 && f[0] == "VmHWM:" {
			hwm = f[1] + " kB"
		}
	}
	return rss + " (peak " + hwm + ")"
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}
