package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/net/http2"
)

// holdIdleH2 sends N requests for PATH to HOST at once, multiplexed STREAMS to a connection over
// N/STREAMS h2c (prior knowledge) connections to ADDR, waits for every answer, then keeps the
// connections open and idle until it is signalled, printing "ready N" once all are answered.
//
// A proxy that forwards each stream over its own HTTP/1.1 upstream connection then pools N of
// them while holding only N/STREAMS client connections: the way to measure 10,000 pooled
// upstreams on a machine whose descriptor limit (20,000) cannot also hold 10,000 HTTP/1.1
// clients beside them.
func holdIdleH2(args []string) error {
	if len(args) < 4 {
		return fmt.Errorf("usage: idle-h2 ADDR HOST N PATH [STREAMS]")
	}
	addr, host, path := args[0], args[1], args[3]
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return fmt.Errorf("N: %w", err)
	}
	streams := 100 // what meshentry and HAProxy both allow a client connection by default
	if len(args) > 4 {
		if streams, err = strconv.Atoi(args[4]); err != nil || streams < 1 {
			return fmt.Errorf("STREAMS: %q", args[4])
		}
	}
	transport := &http2.Transport{AllowHTTP: true}
	var conns []*http2.ClientConn
	defer func() {
		for _, cc := range conns {
			cc.Close()
		}
	}()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for sent := 0; sent < n; {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("connection %d: %w", len(conns), err)
		}
		cc, err := transport.NewClientConn(c)
		if err != nil {
			c.Close()
			return fmt.Errorf("connection %d: %w", len(conns), err)
		}
		conns = append(conns, cc)
		for s := 0; s < streams && sent < n; s, sent = s+1, sent+1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- roundTripOK(cc, "http://"+host+path)
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Println("ready", n)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}

// roundTripOK sends one GET for url on cc and wants a 200.
func roundTripOK(cc *http2.ClientConn, url string) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := cc.RoundTrip(req)
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
