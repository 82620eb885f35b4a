package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serveCmd starts meshentry (the arguments after "--"), reports the time to /ready and the peak
// RSS then, and times reloads: it rewrites one config file with a new entry added and polls the
// forward proxy until a request to the new host is answered by its own backend.
func serveCmd(args []string) error {
	fl := flag.NewFlagSet("serve", flag.ExitOnError)
	admin := fl.String("admin", "127.0.0.1:18100", "meshentry's admin address, as given to it")
	proxyAddr := fl.String("proxy", "127.0.0.1:18101", "meshentry's forward proxy address, as given to it")
	file := fl.String("file", "", "config file to rewrite for each reload; empty skips reloads")
	reloads := fl.Int("reloads", 5, "reloads to time")
	cpuProfile := fl.String("cpuprofile", "", "write a CPU profile of meshentry across the reloads here (meshentry needs --admin-pprof)")
	fl.Parse(args)
	if fl.NArg() == 0 {
		return errors.New("serve: the meshentry command line goes after --")
	}
	backend, err := startBackend()
	if err != nil {
		return err
	}
	cmd := exec.Command(fl.Arg(0), fl.Args()[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start meshentry: %w", err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	if err := waitReady(*admin, 120*time.Second); err != nil {
		return err
	}
	ready := time.Since(start)
	hwm, rss := memOf(cmd.Process.Pid)
	cpu0 := cpuOf(cmd.Process.Pid)
	fmt.Printf("run ready: %.3f s, %.2f s CPU, peak RSS %d MB, RSS %d MB\n", ready.Seconds(), cpu0.Seconds(), hwm>>10, rss>>10)
	if *file == "" {
		return nil
	}
	orig, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	defer os.WriteFile(*file, orig, 0o644)
	var took []time.Duration
	stopProfile := profileCPU(*admin, *cpuProfile)
	for r := range *reloads {
		d, err := timeReload(*file, orig, *proxyAddr, backend, r)
		if err != nil {
			return err
		}
		took = append(took, d)
	}
	inOrder := make([]string, len(took))
	for i, d := range took {
		inOrder[i] = fmt.Sprintf("%.1f", ms(d))
	}
	slices.Sort(took)
	hwm, rss = memOf(cmd.Process.Pid)
	cpu := (cpuOf(cmd.Process.Pid) - cpu0) / time.Duration(len(took))
	if err := stopProfile(); err != nil {
		return err
	}
	fmt.Printf("reload write->serving (%d runs): min %.1f ms, median %.1f ms, max %.1f ms, %.0f ms CPU each; peak RSS %d MB, RSS %d MB\n",
		len(took), ms(took[0]), ms(took[len(took)/2]), ms(took[len(took)-1]), ms(cpu), hwm>>10, rss>>10)
	fmt.Printf("reload write->serving in order (ms): %s\n", strings.Join(inOrder, " "))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// startBackend serves 200 "ok" on a loopback port; the new entries' endpoint is this backend.
func startBackend() (*net.TCPAddr, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	return ln.Addr().(*net.TCPAddr), nil
}

func waitReady(admin string, limit time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := c.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("meshentry not ready after %v", limit)
}

// timeReload writes file with one entry more and returns the time until it serves.
func timeReload(file string, orig []byte, proxyAddr string, backend *net.TCPAddr, r int) (time.Duration, error) {
	host := fmt.Sprintf("reload%d-%d.bench.example", r, time.Now().UnixNano())
	entry := fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: reload-%d\n  namespace: default\nspec:\n  hosts:\n  - %s\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  resolution: STATIC\n  endpoints:\n  - address: 127.0.0.1\n    ports:\n      http: %d\n", r, host, backend.Port)
	content := append(slices.Clip(orig), entry...)
	pu, _ := url.Parse("http://" + proxyAddr)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	start := time.Now()
	if err := os.WriteFile(file, content, 0o644); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/", nil)
		resp, err := c.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "ok" {
				return time.Since(start), nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("reload %d: %s not served after 120 s", r, host)
}

// memOf reads VmHWM and VmRSS (KiB) of pid.
func memOf(pid int) (hwm, rss int64) {
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			hwm = n
		case "VmRSS":
			rss = n
		}
	}
	return hwm, rss
}

// cpuOf reads the user and system CPU time pid has used, from /proc/PID/stat (in clock ticks of
// 10 ms, the USER_HZ every Linux port uses).
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields counted from after its ")" are fixed.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// profileCPU starts a CPU profile of meshentry through its admin API, and the returned stop
// waits for it and writes it to file; with file empty both do nothing. Go's handler profiles for
// a fixed number of seconds (a request ended early loses the profile), so the reloads run inside
// a window long enough for them, and the profile includes the quiet after them.
func profileCPU(admin, file string) (stop func() error) {
	if file == "" {
		return func() error { return nil }
	}
	const window = 20 * time.Second
	done := make(chan error, 1)
	go func() {
		c := &http.Client{Timeout: window + 30*time.Second}
		resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, int(window.Seconds())))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("cpu profile: %s (run meshentry with --admin-pprof)", resp.Status)
			return
		}
		fh, err := os.Create(file)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(fh, resp.Body)
		done <- errors.Join(err, fh.Close())
	}()
	// The handler has started profiling once it answers; give it a moment before the first write.
	time.Sleep(100 * time.Millisecond)
	return func() error {
		if err := <-done; err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		fmt.Printf("cpu profile of %.0f s around the reloads written to %s\n", window.Seconds(), file)
		return nil
	}
}
