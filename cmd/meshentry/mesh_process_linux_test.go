package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMeshExample08BetweenTwoProcesses is example 08 with every meshentry a process of its own,
// as two machines would run it: the built binary, talking over loopback only.
func TestMeshExample08BetweenTwoProcesses(t *testing.T) {
	t.Parallel()
	meshExample08(t, startProcArgs)
}

// startProcArgs runs the built binary as `meshentry run ARGS... --access-log off` and returns its
// listeners once the first has said where it listens (each run here serves one); the process is
// killed when the test ends.
func startProcArgs(t *testing.T, args ...string) map[string]net.Addr {
	t.Helper()
	bound, _ := startProc1(t, args...)
	return bound
}

// startProc1 is startProcArgs that also returns the process, for tests that signal it.
func startProc1(t *testing.T, args ...string) (map[string]net.Addr, *os.Process) {
	t.Helper()
	cmd := exec.Command(binary(t), append(append([]string{"run"}, args...), "--access-log", "off")...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var log strings.Builder
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return log.Write(b) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bound := make(chan map[string]net.Addr, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			name, addr, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "meshentry: "), " listening on ")
			if ta, err := net.ResolveTCPAddr("tcp", addr); ok && err == nil {
				select {
				case bound <- map[string]net.Addr{name: ta}:
				default:
				}
			}
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			logMu.Lock()
			t.Logf("meshentry run %s:\n%s", strings.Join(args, " "), log.String())
			logMu.Unlock()
		}
	})
	select {
	case m := <-bound:
		return m, cmd.Process
	case <-exited:
		t.Fatalf("meshentry run %v exited before listening:\n%s", args, log.String())
	case <-time.After(20 * time.Second):
		t.Fatal("meshentry run did not start")
	}
	return nil, nil
}
