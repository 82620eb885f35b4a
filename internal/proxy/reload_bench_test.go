package proxy

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/resolve"
)

// BenchmarkReloadOneFile measures a reload after one file of many changed, in process: the
// cached compile of every file (one decoded again) and the proxy's Update. The size is
// MESHENTRY_RELOAD_N ServiceEntries (default 10,000) in files of 100. serving-ms/op (and
// serving-cpu-ms/op, the process's CPU time) is the part before the new snapshot serves (the
// watcher finishes the analysis after); bench/scale.sh times the same thing end to end, from
// the write to the proxy answering for the new entry.
func BenchmarkReloadOneFile(b *testing.B) {
	// "edit" changes an entry of the file in place; "add, remove" adds an entry and takes it
	// out again by turns, so every document after the file moves one place in the load order.
	b.Run("edit", func(b *testing.B) { benchReloadOneFile(b, false) })
	b.Run("add, remove", func(b *testing.B) { benchReloadOneFile(b, true) })
}

// benchReloadOneFile reloads after rewriting the middle file: each time with a new last entry,
// or, when shift, with it and without it by turns.
func benchReloadOneFile(b *testing.B, shift bool) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("MESHENTRY_RELOAD_N")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	files := (n + 99) / 100
	for f := range files {
		writeBenchFile(b, filepath.Join(dir, fmt.Sprintf("entries-%05d.yaml", f)), f*100, min(n, (f+1)*100), "")
	}
	mid := filepath.Join(dir, fmt.Sprintf("entries-%05d.yaml", files/2))
	if !shift {
		// The first load holds as many entries as every reload's, so none moves the rest.
		writeBenchFile(b, mid, files/2*100, min(n, (files/2+1)*100), reloadEntry(-1))
	}
	cache := compile.NewCache()
	cache.DeferAnalysis = true
	res, err := cache.Paths([]string{dir}, config.Options{Namespace: "default"}, 1)
	if err != nil || res.Errors() > 0 {
		b.Fatal(err, res.Diagnostics)
	}
	r, err := resolve.New(resolve.Config{Server: "127.0.0.1:1"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	p := New(Config{Resolver: r}, res.Snapshot)
	defer p.pool.Close()
	b.ReportAllocs()
	b.ResetTimer()
	var serving, servingCPU time.Duration
	for i := 0; b.Loop(); i++ {
		more := reloadEntry(i)
		if shift && i%2 == 1 {
			more = ""
		}
		writeBenchFile(b, mid, files/2*100, min(n, (files/2+1)*100), more)
		start, cpu := time.Now(), processCPU()
		res, err := cache.Paths([]string{dir}, config.Options{Namespace: "default"}, uint64(i+2))
		if err != nil || res.Errors() > 0 {
			b.Fatal(err, res.Diagnostics)
		}
		p.Update(res.Snapshot)
		serving += time.Since(start)
		servingCPU += processCPU() - cpu
		res.Finish() // the analysis the watcher runs once the snapshot serves
	}
	b.ReportMetric(float64(serving.Milliseconds())/float64(b.N), "serving-ms/op")
	b.ReportMetric(float64(servingCPU.Milliseconds())/float64(b.N), "serving-cpu-ms/op")
}

// reloadEntry is the ServiceEntry a reload adds at the end of the file it rewrites.
func reloadEntry(i int) string {
	return fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reload-%d}\n"+
		"spec:\n  hosts: [reload%d.bench.example]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"+
		"  resolution: STATIC\n  endpoints: [{address: 127.0.0.1}]\n", i, i)
}

// processCPU is the CPU time the process has used, garbage collection included: on a shared
// machine it says more than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeBenchFile writes entries from..to in bench/scaletool's six shapes, then extra.
func writeBenchFile(b *testing.B, path string, from, to int, extra string) {
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(fh)
	namespaces := []string{"default", "payments", "search", "edge", "data", "batch", "infra", "web"}
	for i := from; i < to; i++ {
		a, bb, c := i/65536%256, i/256%256, i%256
		fmt.Fprintf(w, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se-%d\n  namespace: %s\nspec:\n", i, namespaces[i%len(namespaces)])
		switch i % 6 {
		case 0:
			fmt.Fprintf(w, "  hosts: [svc%d.a.example.com, svc%d.b.example.com]\n  ports: [{number: 443, name: https, protocol: TLS}]\n  resolution: DNS\n", i, i)
		case 1:
			fmt.Fprintf(w, "  hosts: [\"*.wild%d.example.com\", api%d.example.org]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  resolution: NONE\n", i, i)
		case 2:
			fmt.Fprintf(w, "  hosts: [vip%d.internal.example]\n  addresses: [240.%d.%d.%d]\n  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]\n"+
				"  resolution: STATIC\n  endpoints: [{address: 10.%d.%d.%d}, {address: 10.%d.%d.%d, weight: 3}]\n", i, a, bb, c, 64+a, bb, c, 128+a, bb, c)
		case 3:
			fmt.Fprintf(w, "  hosts: [net%d.cidr.example]\n  addresses: [172.%d.%d.0/24]\n  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]\n  resolution: NONE\n", i, 16+i/256%16, c)
		case 4:
			fmt.Fprintf(w, "  hosts: [static%d.example.net]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n"+
				"  endpoints: [{address: 11.%d.%d.%d, locality: us-east1/us-east1-b, labels: {version: v1}}]\n", i, a, bb, c)
		case 5:
			fmt.Fprintf(w, "  hosts: [rr%d.example.com]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS_ROUND_ROBIN\n"+
				"  endpoints: [{address: origin%d.cdn.example.com}]\n", i, i)
		}
	}
	w.WriteString(extra)
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		b.Fatal(err)
	}
}
