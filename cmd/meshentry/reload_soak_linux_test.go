package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// capturedSoak returns, where network namespaces can be made, the starter of the soak's captured
// proxy: a second meshentry, run in a namespace with iptables capture, loads the soak's config
// file beside its own and so reloads with every change; three TCP connections captured by it to
// an echo server must survive all of them. It returns nil where that cannot run.
func capturedSoak(t *testing.T) func(path string) *capturedProxy {
	if why := netns.Requirements(); why != "" {
		t.Logf("no captured tunnels in this soak: %s", why)
		return nil
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Log("no captured tunnels in this soak: needs setpriv (util-linux)")
		return nil
	}
	return func(path string) *capturedProxy {
		ns := netns.New(t, "10.215.0.10/24", "10.215.0.130/24", "10.215.0.131/24")
		echo := ns.MustListen("127.0.0.1:0")
		go func() {
			for {
				c, err := echo.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); io.Copy(c, c) }()
			}
		}()
		own := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: captured-echo}
spec:
  hosts: [echo.captured.internal]
  addresses: [10.215.0.128/25]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]
`, echo.Addr().(*net.TCPAddr).Port)
		// The proxy runs as its own UID: it must be able to read the soak's file and folders.
		for d := filepath.Dir(path); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
		startCaptured(t, ns, "10.215.0.0/24", own, "-f", path)
		cp := &capturedProxy{finalDoc: fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: captured-final}
spec:
  hosts: [final.captured.internal]
  addresses: [10.215.0.131/32]
  ports: [{number: 9001, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]
`, echo.Addr().(*net.TCPAddr).Port)}
		for range 3 {
			c, err := ns.Dial("tcp", "10.215.0.130:9000")
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			cp.conns = append(cp.conns, c)
		}
		// Only finalDoc routes 10.215.0.131:9001; before it loads, the proxy closes the connection.
		cp.serves = func() bool {
			c, err := ns.Dial("tcp", "10.215.0.131:9001")
			if err != nil {
				return false
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 3)
			_, err = io.WriteString(c, "hi\n")
			if err == nil {
				_, err = io.ReadFull(c, buf)
			}
			return err == nil && string(buf) == "hi\n"
		}
		return cp
	}
}
