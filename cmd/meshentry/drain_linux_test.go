package main

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a `meshentry run` child process; signals go to it alone, never to the test binary.
type proc struct {
	cmd            *exec.Cmd
	forward, admin net.Addr
	exited         chan struct{}
	err            error // cmd.Wait's, once exited is closed
	logMu          sync.Mutex
	log            strings.Builder
}

// startProc runs the built binary on config with a drain timeout and waits for both listeners.
func startProc(t *testing.T, config string, drainTimeout time.Duration) *proc {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &proc{exited: make(chan struct{})}
	p.cmd = exec.Command(binary(t), "run", "-f", cfg, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--drain-timeout", drainTimeout.String())
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = writerFunc(func(b []byte) (int, error) { p.logMu.Lock(); defer p.logMu.Unlock(); return p.log.Write(b) })
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan map[string]net.Addr, 1)
	go func() {
		// Lines read "meshentry: NAME listening on ADDR"; the rest is read to the end so that
		// Wait does not block on the pipe.
		found := map[string]net.Addr{}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			name, addr, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "meshentry: "), " listening on ")
			if ta, err := net.ResolveTCPAddr("tcp", addr); ok && err == nil {
				found[name] = ta
				if len(found) == 2 {
					addrs <- found
				}
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			p.logMu.Lock()
			t.Logf("meshentry log:\n%s", p.log.String())
			p.logMu.Unlock()
		}
	})
	select {
	case m := <-addrs:
		p.forward, p.admin = m["forward proxy"], m["admin"]
	case <-p.exited:
		t.Fatalf("meshentry exited before listening: %v", p.err)
	case <-time.After(30 * time.Second):
		t.Fatal("meshentry did not start listening")
	}
	return p
}

// status waits up to limit for the process to exit and returns its exit status.
func (p *proc) status(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(limit):
		t.Fatalf("meshentry still runs %v after the signal", limit)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee) && ee.Exited():
		return ee.ExitCode()
	default:
		t.Fatalf("meshentry did not exit by itself: %v", p.err)
		return -1
	}
}

func TestRunExitStatusAfterSignals(t *testing.T) {
	t.Parallel()
	echo := echoListener(t)
	config := tcpEntry(echo.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		name         string
		drainTimeout time.Duration
		tunnel       bool // a CONNECT tunnel is open when the signal comes
		second       bool // a SIGINT follows once /ready says draining
		wantStatus   int
		minTook      time.Duration // the exit comes no sooner after SIGTERM
		maxTook      time.Duration // ... and no later
	}{
		{name: "a clean drain on SIGTERM exits 0 at once", drainTimeout: 30 * time.Second, wantStatus: 0, maxTook: 10 * time.Second},
		{name: "a drain that reaches its timeout with a tunnel open exits 0", drainTimeout: time.Second, tunnel: true,
			wantStatus: 0, minTook: 950 * time.Millisecond, maxTook: 10 * time.Second},
		{name: "a second signal during the drain exits at once with status 1", drainTimeout: time.Minute, tunnel: true, second: true,
			wantStatus: 1, maxTook: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startProc(t, config, tt.drainTimeout)
			if tt.tunnel {
				c, br := openTunnel(t, p.forward.String())
				if !echoes(c, br, "before the signal") {
					t.Fatal("the tunnel does not carry bytes")
				}
			}
			start := time.Now()
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if tt.second {
				waitDraining(t, p.admin)
				if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
			}
			got := p.status(t, tt.maxTook)
			took := time.Since(start)
			if got != tt.wantStatus {
				t.Errorf("exit status %d, want %d", got, tt.wantStatus)
			}
			if took < tt.minTook {
				t.Errorf("exited %v after SIGTERM, before the drain timeout %v", took, tt.minTook)
			}
		})
	}
}

// waitDraining polls /ready until it answers 503, which it does from the first signal on.
func waitDraining(t *testing.T, admin net.Addr) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if code, _ := adminGet(t, "GET", admin, "/ready"); code == 503 {
			return
		}
	}
	t.Fatal("/ready did not turn 503 within 5s of SIGTERM")
}
