package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// holdIdle opens N keep-alive connections to ADDR, sends one request for HOST on each (for PATH,
// "/" unless given) and reads its response, then keeps them all open and idle until it is signalled. It prints "ready N" once
// every connection has had its answer, so a script can measure the proxy's memory then.
func holdIdle(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: idle ADDR HOST N [PATH]")
	}
	path := "/"
	if len(args) > 3 {
		path = args[3]
	}
	addr, host := args[0], args[1]
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return fmt.Errorf("N: %w", err)
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	// The requests go in batches of 256, each answered before the next is sent, so that the proxy
	// is measured holding idle connections rather than busy ones. For a slow PATH they all go at
	// once instead, so that they are all in flight together and the proxy opens as many upstream
	// connections.
	batch := 256
	if path != "/" {
		batch = n
	}
	for len(conns) < n {
		start := len(conns)
		for len(conns) < n && len(conns)-start < batch {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return fmt.Errorf("connection %d: %w", len(conns), err)
			}
			conns = append(conns, c)
			if _, err := io.WriteString(c, req); err != nil {
				return fmt.Errorf("connection %d: %w", len(conns)-1, err)
			}
		}
		for i := start; i < len(conns); i++ {
			if err := readOK(conns[i]); err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
		}
	}
	fmt.Println("ready", len(conns))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}

// readOK reads one response from c and wants it to be a 200.
func readOK(c net.Conn) error {
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
