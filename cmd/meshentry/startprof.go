//go:build startprof

package main

import (
	"net/http"
	"os"
	"runtime/pprof"
	"time"
)

// Built with -tags startprof, meshentry writes a CPU profile of its startup to
// MESHENTRY_CPUPROFILE: from the process start until the admin API at MESHENTRY_READY_URL
// (http://ADDR/ready) first answers 200, so that `run` until ready can be taken apart with
// `go tool pprof`. bench/startprof.sh drives it. The poll costs a request each 10 ms.
func init() {
	path, url := os.Getenv("MESHENTRY_CPUPROFILE"), os.Getenv("MESHENTRY_READY_URL")
	if path == "" || url == "" {
		return
	}
	fh, err := os.Create(path)
	if err != nil {
		return
	}
	if err := pprof.StartCPUProfile(fh); err != nil {
		fh.Close()
		return
	}
	go func() {
		defer fh.Close()
		defer pprof.StopCPUProfile()
		client := &http.Client{Timeout: time.Second}
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if resp, err := client.Get(url); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
	}()
}
