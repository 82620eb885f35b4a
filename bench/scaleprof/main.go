// Command scaleprof times the control-plane stages (load, validate, analyse, build) over the
// given config as `meshentry validate` runs them, and writes CPU and heap profiles, so that
// bench/scale.sh's figures can be taken apart with `go tool pprof -top`.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/validate"
)

func main() {
	path := flag.String("f", "", "config file or folder")
	cpu := flag.String("cpuprofile", "", "write a CPU profile here")
	mem := flag.String("memprofile", "", "write a heap (alloc) profile here")
	reload := flag.String("reload", "", "profile instead a cached recompile after appending an entry to this file")
	flag.Parse()
	var err error
	if *reload != "" {
		err = recompile(*path, *reload, *cpu)
	} else {
		err = run(*path, *cpu, *mem)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scaleprof:", err)
		os.Exit(1)
	}
}

func run(path, cpu, mem string) error {
	if path == "" {
		return fmt.Errorf("-f is required")
	}
	stop, err := startCPUProfile(cpu)
	if err != nil {
		return err
	}
	defer stop()
	t0 := time.Now()
	loaded, err := config.Load([]string{path}, config.Options{})
	if err != nil {
		return err
	}
	t1 := time.Now()
	var valid []*config.Document
	errs := 0
	for _, d := range loaded.Documents {
		found := validate.Document(d)
		if _, _, ok := diagOK(found); ok {
			valid = append(valid, d)
		} else {
			errs++
		}
	}
	t2 := time.Now()
	findings := validate.Analyze(valid)
	t3 := time.Now()
	snap := registry.Build(valid, 1)
	t4 := time.Now()
	fmt.Printf("load %v, validate %v, analyse %v, build %v; %d documents, %d invalid, %d findings, %d services\n",
		t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond),
		t4.Sub(t3).Round(time.Millisecond), len(loaded.Documents), errs, len(findings), len(snap.Services))
	if mem != "" {
		fh, err := os.Create(mem)
		if err != nil {
			return err
		}
		defer fh.Close()
		runtime.GC()
		err = pprof.Lookup("allocs").WriteTo(fh, 0)
		// Held to here, so the heap profile shows what a loaded registry keeps.
		runtime.KeepAlive(snap)
		runtime.KeepAlive(loaded)
		return err
	}
	return nil
}

func diagOK(ds []diag.Diagnostic) (errs, warns []diag.Diagnostic, ok bool) {
	errs, warns, _ = diag.Split(ds)
	return errs, warns, len(errs) == 0
}

// recompile loads path through a compile cache, appends an entry to file, and times and
// profiles the recompile, as the watcher runs it after that file changed.
func recompile(path, file, cpu string) error {
	c := compile.NewCache()
	if _, err := c.Paths([]string{path}, config.Options{}, 1); err != nil {
		return err
	}
	orig, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	defer os.WriteFile(file, orig, 0o644)
	extra := "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: added}\nspec:\n  hosts: [added.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n"
	if err := os.WriteFile(file, append(orig, extra...), 0o644); err != nil {
		return err
	}
	stop, err := startCPUProfile(cpu)
	if err != nil {
		return err
	}
	defer stop()
	for i := range 5 {
		start := time.Now()
		res, err := c.Paths([]string{path}, config.Options{}, uint64(i+2))
		if err != nil {
			return err
		}
		fmt.Printf("recompile %d: %v, %d services, cache %+v\n", i, time.Since(start).Round(time.Millisecond), len(res.Snapshot.Services), c.Files.Stats())
	}
	return nil
}

// startCPUProfile profiles the CPU into the file cpu until the returned stop is called; with
// cpu empty it does nothing.
func startCPUProfile(cpu string) (stop func(), err error) {
	if cpu == "" {
		return func() {}, nil
	}
	fh, err := os.Create(cpu)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(fh); err != nil {
		fh.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		fh.Close()
	}, nil
}
