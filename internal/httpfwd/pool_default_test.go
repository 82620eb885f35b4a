package httpfwd

import (
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestPoolKeepsEveryConnectionOfABurst(t *testing.T) {
	t.Parallel()
	const clients = 100 // more than the old default cap of 64
	var arrived sync.WaitGroup
	arrived.Add(clients)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	var first sync.Once
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/burst" {
			// Every exchange of the burst is in flight at once, so each holds its own
			// upstream connection.
			arrived.Done()
			select {
			case <-all:
			case <-time.After(10 * time.Second):
				first.Do(func() { t.Error("the burst's requests did not all reach the upstream") })
			}
		}
		w.Write([]byte("ok"))
	})
	pool := &Pool{}
	t.Cleanup(func() { pool.Close() })
	addr := startProxy(t, &Server{Router: staticRouter(be.addr()), Pool: pool})
	wave := func(path string) {
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := dial(t, addr)
				if resp := c.roundTrip("GET " + path + " HTTP/1.1\r\nHost: up.test\r\n\r\n"); resp.StatusCode != 200 {
					t.Errorf("GET %s: %d", path, resp.StatusCode)
				}
			}()
		}
		wg.Wait()
	}
	wave("/burst")
	if got := pool.Idle(); got != clients {
		t.Fatalf("after a burst of %d exchanges the pool holds %d idle connections, want all %d", clients, got, clients)
	}
	if n := pool.IdleFull(); n != 0 {
		t.Errorf("IdleFull = %d after the burst, want 0: no connection met a full pool", n)
	}
	before := be.conns.Load()
	wave("/again")
	if opened := be.conns.Load() - before; opened != 0 {
		t.Errorf("a second burst opened %d new upstream connections, want 0 (the pool had them)", opened)
	}
}

func TestPoolCountsConnectionsClosedAtTheIdleCap(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	accepted := make(chan net.Conn, 5)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- nc
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for nc := range accepted {
			nc.Close()
		}
	})
	pool := &Pool{MaxIdlePerKey: 2}
	t.Cleanup(func() { pool.Close() })
	now := time.Now()
	for range 5 {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		pool.put(newUpConn("k", nc), now)
	}
	if got, full := pool.Idle(), pool.IdleFull(); got != 2 || full != 3 {
		t.Errorf("after 5 connections offered to a pool of 2: %d idle, IdleFull %d; want 2 and 3", got, full)
	}
}
