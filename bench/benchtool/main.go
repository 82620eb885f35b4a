// Command benchtool is the upstream and the bulk client that bench/proxy.sh measures proxies with:
// an HTTP keep-alive backend, a TCP source that streams a fixed number of bytes per connection,
// a client that reads such a stream (directly, or through a CONNECT tunnel) and times it, and
// clients that hold idle connections (idle over HTTP/1.1, idle-h2 multiplexed) or open one per exchange (churn); and the reference
// proxies beside meshentry: TCP relays (pipe, evpipe, evhand, evloop) and an HTTP/1.1 keep-alive
// proxy on raw epoll (evhttp).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	const usage = "usage: benchtool http ADDR | source ADDR BYTES [--answer-connect] | fetch ADDR BYTES [--connect HOST:PORT] | pipe ADDR UPSTREAM | evpipe ADDR UPSTREAM | evhand ADDR UPSTREAM | evloop ADDR UPSTREAM | evhttp ADDR UPSTREAM | idle ADDR HOST N | idle-h2 ADDR HOST N PATH [STREAMS] | churn ADDR [-c C] [-d DUR] [-bytes N] [--connect HOST:PORT]"
	want := map[string]int{"http": 3, "source": 4, "fetch": 4, "pipe": 4, "evpipe": 4, "evhand": 4, "evloop": 4, "evhttp": 4, "idle": 5, "idle-h2": 6, "churn": 3}
	if len(os.Args) < 2 || want[os.Args[1]] == 0 || len(os.Args) < want[os.Args[1]] {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "http":
		err = serveHTTP(os.Args[2])
	case "source":
		err = serveSource(os.Args[2:])
	case "fetch":
		err = fetch(os.Args[2:])
	case "pipe":
		err = servePipe(os.Args[2], os.Args[3])
	case "evpipe":
		err = serveEvPipe(os.Args[2], os.Args[3])
	case "evhand":
		err = serveEvHand(os.Args[2], os.Args[3])
	case "evloop":
		err = serveEvLoop(os.Args[2], os.Args[3])
	case "evhttp":
		err = serveEvHTTP(os.Args[2], os.Args[3])
	case "idle":
		err = holdIdle(os.Args[2:])
	case "idle-h2":
		err = holdIdleH2(os.Args[2:])
	case "churn":
		err = churn(os.Args[2:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

// serveHTTP answers every request with a small fixed body, keep-alive; a request for /slow is
// answered after two seconds, so that many can be in flight at once.
func serveHTTP(addr string) error {
	body := []byte(strings.Repeat("x", 128))
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(2 * time.Second)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
}

// serveSource writes BYTES zero bytes to every connection, then closes it. With --answer-connect
// it first reads a CONNECT head and answers it, its 200 and the first bytes in one write: the far
// end of a proxy that forwards a CONNECT rather than ending it (HAProxy's mode http).
func serveSource(args []string) error {
	fs := flag.NewFlagSet("source", flag.ExitOnError)
	answer := fs.Bool("answer-connect", false, "read a CONNECT head and answer it 200 first")
	fs.Parse(args[2:])
	var n int64
	if _, err := fmt.Sscan(args[1], &n); err != nil {
		return fmt.Errorf("BYTES: %w", err)
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			var reply []byte
			if *answer {
				if !readConnectHead(c) {
					return
				}
				reply = connectAnswer
			}
			// Drain whatever the client sends (a CONNECT tunnel sends nothing after the handshake).
			go io.Copy(io.Discard, c)
			for left := n; left > 0; reply = nil {
				chunk := buf
				if left < int64(len(chunk)) {
					chunk = chunk[:left]
				}
				if reply != nil {
					chunk = append(append(make([]byte, 0, len(reply)+len(chunk)), reply...), chunk...)
					left += int64(len(reply))
				}
				w, err := c.Write(chunk)
				if err != nil {
					return
				}
				left -= int64(w)
			}
		}()
	}
}

var connectAnswer = []byte("HTTP/1.1 200 Connection established\r\n\r\n")

// readConnectHead reads c up to the end of a request head that starts with CONNECT; false when
// c ends first or sends something else.
func readConnectHead(c net.Conn) bool {
	head := make([]byte, 0, 512)
	buf := make([]byte, 512)
	for !bytes.Contains(head, []byte("\r\n\r\n")) {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil || len(head) > 8192 {
			return false
		}
	}
	return bytes.HasPrefix(head, []byte("CONNECT "))
}

// fetch reads BYTES from ADDR (through a CONNECT tunnel to --connect when given) and prints the
// elapsed seconds and MiB/s.
func fetch(args []string) error {
	fs := flag.NewFlagSet("fetch", flag.ExitOnError)
	connect := fs.String("connect", "", "open a CONNECT tunnel to HOST:PORT first")
	bufSize := fs.Int("buf", 1<<20, "read buffer size in bytes")
	fs.Parse(args[2:])
	var want int64
	if _, err := fmt.Sscan(args[1], &want); err != nil {
		return fmt.Errorf("BYTES: %w", err)
	}
	start := time.Now()
	c, err := net.Dial("tcp", args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	var r io.Reader = c
	if *connect != "" {
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", *connect, *connect)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("CONNECT: %s", resp.Status)
		}
		r = br
	}
	// A large buffer keeps the client's syscalls from being what the measurement measures.
	buf := make([]byte, *bufSize)
	var got int64
	for {
		n, err := r.Read(buf)
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
	secs := time.Since(start).Seconds()
	fmt.Printf("%.3f %.1f\n", secs, float64(got)/secs/(1<<20))
	return nil
}

// servePipe is the smallest Go TCP relay: io.Copy both ways (the kernel's splice path), the
// baseline that shows what a passthrough costs before any proxy logic.
func servePipe(addr, upstream string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				return
			}
			defer u.Close()
			go func() {
				io.Copy(u, c)
				u.(*net.TCPConn).CloseWrite()
			}()
			io.Copy(c, u)
		}()
	}
}
