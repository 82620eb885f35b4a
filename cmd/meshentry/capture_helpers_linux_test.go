package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// startCaptured runs `meshentry run --capture-listen 0.0.0.0:15006` on config inside ns, as UID
// proxyUID, with an iptables rule that redirects every other user's TCP to cidr to it, and waits
// until it listens. extra are further flags. The cleanup stops it with SIGINT; the log is shown if
// the test failed.
func startCaptured(t *testing.T, ns *netns.Namespace, cidr, config string, extra ...string) *exec.Cmd {
	t.Helper()
	cfg := writeConfig(t, config)
	ns.IPTables("-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", cidr,
		"-m", "owner", "!", "--uid-owner", proxyUID, "-j", "REDIRECT", "--to-ports", "15006")
	return launchCaptured(t, ns, cfg, extra...)
}

// writeConfig writes config where the proxy's UID can read it and returns the path.
func writeConfig(t *testing.T, config string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "meshentry-capture-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// launchCaptured runs `meshentry run -f cfg --capture-listen 0.0.0.0:15006` inside ns as UID
// proxyUID, with no iptables rule of its own, and waits until it listens; see startCaptured.
func launchCaptured(t *testing.T, ns *netns.Namespace, cfg string, extra ...string) *exec.Cmd {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux) to run the proxy under its own UID")
	}
	bin := binary(t)
	args := append([]string{"netns", "exec", ns.Name, "setpriv", "--reuid", proxyUID, "--regid", proxyUID, "--clear-groups",
		bin, "run", "-f", cfg, "--listen", "", "--admin", "", "--capture-listen", "0.0.0.0:15006", "--log-level", "debug"}, extra...)
	cmd := exec.Command("ip", args...)
	stdout, _ := cmd.StdoutPipe()
	var logs strings.Builder
	var logMu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(p) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Error("meshentry did not stop within 5 s of SIGINT")
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("meshentry log:\n%s", logs.String())
			logMu.Unlock()
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "capture listening on") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("meshentry did not start listening")
	}
	return cmd
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// nsDial connects from inside ns to addr, with a 10 s deadline on the connection so that a
// stuck proxy fails the test instead of hanging it.
func nsDial(t *testing.T, ns *netns.Namespace, addr string) net.Conn {
	t.Helper()
	c, err := ns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// nsHTTPSGet sends GET path with Host and SNI sni over TLS trusting ca, from inside ns to addr,
// and returns the response body.
func nsHTTPSGet(t *testing.T, ns *netns.Namespace, ca *backend.CA, addr, sni, path string) (string, error) {
	t.Helper()
	tc := tls.Client(nsDial(t, ns, addr), backend.TLSClient(ca, sni))
	defer tc.Close()
	fmt.Fprintf(tc, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, sni)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
