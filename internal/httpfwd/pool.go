package httpfwd

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Pool keeps idle keep-alive upstream connections, grouped by Upstream.Key. The zero value is
// ready to use; a Pool may be shared by several Servers.
type Pool struct {
	// MaxIdlePerKey bounds the idle connections kept per key; 0 means 64.
	MaxIdlePerKey int
	// IdleTimeout closes connections idle for longer; 0 means 90 seconds.
	IdleTimeout time.Duration

	mu     sync.Mutex
	idle   map[string][]*upConn // per key, most recently used last
	count  int
	closed bool
	sweep  *time.Timer
	h2Once sync.Once
	h2     *http.Transport // shared by all h2c upstreams, created on first use
}

// upConn is one upstream connection; the reader and writer belong to the request using it.
type upConn struct {
	key       string
	nc        net.Conn
	idleSince time.Time
	reused    bool // served a request before, so it may have been closed by the server meanwhile
}

func (p *Pool) maxIdle() int {
	if p.MaxIdlePerKey > 0 {
		return p.MaxIdlePerKey
	}
	return 64
}

func (p *Pool) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return 90 * time.Second
}

// get returns the most recently used idle connection for key, or nil.
func (p *Pool) get(key string, now time.Time) *upConn {
	timeout := p.idleTimeout()
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[key]
	if len(list) == 0 {
		return nil
	}
	for len(list) > 0 {
		uc := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		p.count--
		if now.Sub(uc.idleSince) < timeout {
			p.idle[key] = list
			uc.reused = true
			return uc
		}
		uc.nc.Close()
	}
	p.idle[key] = list
	return nil
}

// put offers a connection whose last response was read completely; it is closed when the pool
// is full or closed.
func (p *Pool) put(uc *upConn, now time.Time) {
	p.mu.Lock()
	list := p.idle[uc.key]
	if p.closed || len(list) >= p.maxIdle() {
		p.mu.Unlock()
		uc.nc.Close()
		return
	}
	if p.idle == nil {
		p.idle = make(map[string][]*upConn)
	}
	uc.idleSince = now
	p.idle[uc.key] = append(list, uc)
	p.count++
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.idleTimeout(), p.expire)
	}
	p.mu.Unlock()
}

// expire closes connections idle for too long, so a key no longer used does not hold sockets.
func (p *Pool) expire() {
	timeout := p.idleTimeout()
	now := time.Now()
	var stale []*upConn
	p.mu.Lock()
	for key, list := range p.idle {
		keep := list[:0]
		for _, uc := range list {
			if now.Sub(uc.idleSince) >= timeout {
				stale = append(stale, uc)
			} else {
				keep = append(keep, uc)
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(p.idle, key)
		} else {
			p.idle[key] = keep
		}
	}
	p.count -= len(stale)
	if p.count > 0 && !p.closed {
		p.sweep.Reset(timeout / 2)
	} else {
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, uc := range stale {
		uc.nc.Close()
	}
}

// Idle returns the number of idle connections held.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// CloseIdle closes every idle connection; the pool stays usable.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.count = 0
	if p.sweep != nil {
		p.sweep.Stop()
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, list := range idle {
		for _, uc := range list {
			uc.nc.Close()
		}
	}
	p.mu.Lock()
	h2 := p.h2
	p.mu.Unlock()
	if h2 != nil {
		h2.CloseIdleConnections()
	}
}

// Close closes every idle connection and refuses to keep any more.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CloseIdle()
	return nil
}
