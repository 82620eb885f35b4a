package evloop

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
)

// BenchmarkChurn opens a connection per op through a relay to an upstream that sends 128 bytes
// and closes, as bench/churn.sh's tunnel rows do, read by the client to the EOF, from 8
// clients per P at once: the Group against a relay on package net (net.Dial and two io.Copy),
// the floor of the relays built on it, and against no relay at all. Client and upstream run in
// the same process and are the same in every row, so a row's cost over "direct" is its relay's.
// cpu-ns/op is the whole process's user and system CPU per connection, steadier than the wall
// time on a shared machine. Run: go test -run '^$' -bench Churn -benchmem ./internal/evloop
func BenchmarkChurn(b *testing.B) {
	greeting := make([]byte, 128)
	up := serve(b, func(c *net.TCPConn) { c.Write(greeting) })
	relays := []struct {
		name  string
		start func(b *testing.B) string
	}{
		// A loop per P, the default, and a single loop, which leaves the other P to the
		// benchmark's own client and upstream.
		{"evloop", func(b *testing.B) string { return groupRelay(b, up.addr, Options{}) }},
		{"evloop-1-loop", func(b *testing.B) string { return groupRelay(b, up.addr, Options{Loops: 1}) }},
		{"net", func(b *testing.B) string { return netRelay(b, up.addr.String()) }},
		{"direct", func(b *testing.B) string { return up.addr.String() }},
	}
	for _, r := range relays {
		b.Run(r.name, func(b *testing.B) {
			addr := r.start(b)
			b.ReportAllocs()
			b.SetParallelism(8)
			cpu := processCPU()
			defer func() { b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op") }()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 512)
				for pb.Next() {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Error(err)
						return
					}
					n := 0
					for err == nil {
						var m int
						m, err = c.Read(buf[n:])
						n += m
					}
					c.Close()
					if n != len(greeting) || err != io.EOF {
						b.Errorf("read %d bytes, %v", n, err)
						return
					}
				}
			})
		})
	}
}

func groupRelay(b *testing.B, upstream netip.AddrPort, o Options) string {
	g := newGroup(b, o)
	return listen(b, g, func(Accepted) (Target, bool) { return Target{Addr: upstream}, true })
}

// netRelay is the plain relay on package net: a goroutine per connection that dials the
// upstream, a second for one direction, half-closes passed on.
func netRelay(b *testing.B, upstream string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				var dir sync.WaitGroup
				dir.Go(func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() })
				io.Copy(c, u)
				c.(*net.TCPConn).CloseWrite()
				dir.Wait()
			})
		}
	})
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// processCPU is the CPU time of the whole process (client, upstream and relay), user and system.
func processCPU() int64 {
	var u syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return u.Utime.Nano() + u.Stime.Nano()
}
