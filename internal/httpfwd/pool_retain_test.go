package httpfwd

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestPoolRetain drives Retain over real loopback connections: the upstream side of each one
// reports when the pool closed it.
func TestPoolRetain(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c) // returns when the pool closes its end
				c.Close()
				closed <- struct{}{}
			}()
		}
	}()
	dial := func(key string) *upConn {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return newUpConn(key, nc)
	}
	expectClosed := func(t *testing.T, n int) {
		t.Helper()
		for i := range n {
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatalf("only %d of %d connections were closed", i, n)
			}
		}
		select {
		case <-closed:
			t.Fatalf("more than %d connections were closed", n)
		case <-time.After(50 * time.Millisecond):
		}
	}
	p := &Pool{}
	defer p.Close()
	now := time.Now()
	p.put(dial("stays"), now)
	p.put(dial("stays"), now)
	p.put(dial("gone"), now)
	keep := func(key string) bool { return key == "stays" }

	t.Run("closes the idle connections of keys that are gone and keeps the others", func(t *testing.T) {
		if n := p.Retain(keep); n != 1 {
			t.Fatalf("Retain closed %d, want 1", n)
		}
		expectClosed(t, 1)
		if n := p.Idle(); n != 2 {
			t.Fatalf("Idle = %d, want the 2 connections that stay", n)
		}
		if uc := p.get("stays", time.Now()); uc == nil {
			t.Fatal("a kept connection is no longer served")
		} else {
			p.put(uc, time.Now())
		}
	})
	t.Run("closes a connection handed back later under a key that is gone", func(t *testing.T) {
		p.put(dial("gone"), time.Now())
		expectClosed(t, 1)
		if n := p.Idle(); n != 2 {
			t.Fatalf("Idle = %d, want 2", n)
		}
	})
	t.Run("pools keys the next Retain keeps again", func(t *testing.T) {
		p.Retain(func(string) bool { return true })
		p.put(dial("gone"), time.Now())
		if n := p.Idle(); n != 3 {
			t.Fatalf("Idle = %d, want 3", n)
		}
		if uc := p.get("gone", time.Now()); uc == nil || errors.Is(uc.nc.SetDeadline(time.Time{}), net.ErrClosed) {
			t.Fatal("the connection of a key kept again was not pooled")
		} else {
			uc.nc.Close()
			expectClosed(t, 1)
		}
	})
}
