package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
)

// churn opens a new connection per exchange to ADDR, from C workers for DURATION: each connects
// (through a CONNECT tunnel to --connect when given), reads what the other end sends until it
// closes (the source's BYTES), and closes. It prints "connections conn/s p50_us p99_us errors
// cpu_us": the last its own CPU time (user+system) per connection, what the client pays for a
// row, which the proxy's CPU leaves out (a CONNECT costs the client a write and a read more).
func churn(args []string) error {
	fs := flag.NewFlagSet("churn", flag.ExitOnError)
	connect := fs.String("connect", "", "open a CONNECT tunnel to HOST:PORT on each connection")
	conns := fs.Int("c", 16, "connections at once")
	dur := fs.Duration("d", 5*time.Second, "how long to run")
	want := fs.Int64("bytes", 128, "bytes the far end sends on each connection")
	fs.Parse(args[1:])
	addr := args[0]
	var (
		mu     sync.Mutex
		lat    []time.Duration
		errs   int
		wg     sync.WaitGroup
		begin  = time.Now()
		finish = begin.Add(*dur)
		cpu0   = cpuTime()
	)
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			buf := make([]byte, 4096)
			for time.Now().Before(finish) {
				t0 := time.Now()
				if err := churnOnce(addr, *connect, *want, buf); err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	cpu := cpuTime() - cpu0
	if len(lat) == 0 {
		return fmt.Errorf("no connection succeeded (%d errors)", errs)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	fmt.Printf("%d %.0f %.0f %.0f %d %.1f\n", len(lat), float64(len(lat))/elapsed.Seconds(), q(0.5), q(0.99), errs,
		float64(cpu.Microseconds())/float64(len(lat)))
	return nil
}

// cpuTime is the CPU time, user and system, this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// churnOnce makes one connection's exchange: connect, optionally CONNECT, read want bytes to EOF.
func churnOnce(addr, connect string, want int64, buf []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var got int64
	if connect != "" {
		n, err := connectThrough(c, connect, buf)
		if err != nil {
			return err
		}
		got = int64(n)
	}
	for {
		n, err := c.Read(buf)
		got += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if got != want {
		return fmt.Errorf("read %d bytes, want %d", got, want)
	}
	return nil
}

// connectThrough asks for a CONNECT tunnel to target on c and reads the answer's head; it returns
// how many bytes of the tunnel arrived with it. The head is parsed by hand, not by net/http, so
// that the client spends on it about what the proxy does: on a shared machine a costly client
// would slow the CONNECT rows down for reasons of its own.
func connectThrough(c net.Conn, target string, buf []byte) (int, error) {
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return 0, err
	}
	have := 0
	for {
		if have == len(buf) {
			return 0, errors.New("CONNECT: answer head too long")
		}
		n, err := c.Read(buf[have:])
		have += n
		if end := bytes.Index(buf[:have], []byte("\r\n\r\n")); end >= 0 {
			line := buf[:have]
			if i := bytes.IndexByte(line, '\r'); i >= 0 {
				line = line[:i]
			}
			if !bytes.HasPrefix(line, []byte("HTTP/1.")) || !bytes.HasPrefix(line[min(len(line), 9):], []byte("200")) {
				return 0, fmt.Errorf("CONNECT: %q", line)
			}
			return have - end - 4, nil
		}
		if err != nil {
			return 0, fmt.Errorf("CONNECT: %w", err)
		}
	}
}
