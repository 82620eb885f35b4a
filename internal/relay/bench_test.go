package relay

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
)

// BenchmarkStream streams through a relay between TCP sockets, against a plain io.Copy pair (the
// proxy's relay before this package, which splices with a pipe held per direction) as baseline.
// Run: go test -run '^$' -bench Stream -benchtime 64x ./internal/relay (each op moves 16 MiB).
func BenchmarkStream(b *testing.B) {
	const size = 16 << 20
	variants := []struct {
		name string
		pipe func(a, c net.Conn)
	}{
		{name: "relay", pipe: func(a, c net.Conn) { Pipe(context.Background(), a, c, Options{IdleTimeout: 3600e9}) }},
		{name: "io.Copy", pipe: func(a, c net.Conn) {
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(c, a); halfClose(c) }()
			io.Copy(a, c)
			halfClose(a)
			wg.Wait()
			a.Close()
			c.Close()
		}},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(size)
			chunk := make([]byte, 256<<10)
			for b.Loop() {
				tn := startBenchTunnel(b, v.pipe)
				go func() {
					for sent := 0; sent < size; sent += len(chunk) {
						tn.backend.Write(chunk)
					}
					tn.backend.Close()
				}()
				if n, err := io.Copy(io.Discard, tn.client); err != nil || n != size {
					b.Fatalf("read %d, %v", n, err)
				}
				tn.client.Close()
				<-tn.done
			}
		})
	}
}

type benchTunnel struct {
	client, backend net.Conn
	done            chan struct{}
}

func startBenchTunnel(b *testing.B, pipe func(a, c net.Conn)) benchTunnel {
	front, _ := net.Listen("tcp", "127.0.0.1:0")
	back, _ := net.Listen("tcp", "127.0.0.1:0")
	defer front.Close()
	defer back.Close()
	tn := benchTunnel{done: make(chan struct{})}
	go func() {
		defer close(tn.done)
		a, err := front.Accept()
		if err != nil {
			return
		}
		c, err := net.Dial("tcp", back.Addr().String())
		if err != nil {
			a.Close()
			return
		}
		pipe(a, c)
	}()
	var err error
	if tn.client, err = net.Dial("tcp", front.Addr().String()); err != nil {
		b.Fatal(err)
	}
	if tn.backend, err = back.Accept(); err != nil {
		b.Fatal(err)
	}
	return tn
}
