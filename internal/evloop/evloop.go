// Package evloop relays TCP connections on raw epoll, outside Go's netpoller: a Group of loops,
// each one goroutine with its own epoll instance, accepts on its own
// SO_REUSEPORT listener, connects upstream and moves the bytes with non-blocking system calls
// and edge-triggered events, as HAProxy does. A relay built on package net parks and wakes a
// goroutine (and often a thread) around the netpoller for every read that would block; on a
// churn of short connections that hand-off costs more than the relaying itself, and only a loop
// that owns the whole life of a connection (accept, connect, relay, close) avoids it.
//
// A ListenHead listener decides each connection from its client's first bytes, peeked and
// left in the socket, so that a port can keep some connections (a CONNECT tunnel) on the loop
// and hand the others (HTTP) to a Go server that reads them unchanged.
//
// The loops run the caller's RouteFunc, HeadFunc and Target hooks on their own goroutines, so
// none may block: a blocked callback stalls every connection of that loop.
//
// A loop's goroutine is not locked to its OS thread. A locked goroutine that parks when idle
// hands its P to another thread and needs a thread wake on each side of the park (futex,
// stoplockedm, startlockedm); unlocked, it parks and wakes like any goroutine, which cost
// less CPU per relayed connection in every A/B run of the two.
package evloop

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// Defaults of Options, the first two as Istio's connect_timeout and Envoy tcp_proxy's
// idle_timeout.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultIdleTimeout    = time.Hour
	DefaultBufferSize     = 16 << 10
	// DefaultHeadTimeout and DefaultMaxHeadBytes bound the head phase of a ListenHead
	// listener as httpfwd's HeaderReadTimeout and MaxHeaderBytes bound a request head.
	DefaultHeadTimeout  = 10 * time.Second
	DefaultMaxHeadBytes = 64 << 10
)

// Options tune a Group; the zero value takes every default.
type Options struct {
	// Loops is the number of event loops; 0 is runtime.GOMAXPROCS(0).
	Loops int
	// ConnectTimeout bounds the upstream connect; 0 is DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// IdleTimeout closes a pair that moved no byte either way for that long; 0 is
	// DefaultIdleTimeout. The loops check it coarsely: a pair may live up to a sweep tick
	// (at most 100 ms, or a quarter of the shorter timeout) longer.
	IdleTimeout time.Duration
	// BufferSize is the size of the buffer a direction holds while it has bytes in flight; 0 is
	// DefaultBufferSize.
	BufferSize int
	// MaxConnections bounds the open pairs of the Group; 0 is unlimited. An accepted connection
	// over it is closed at once and counted in Stats.Overflow.
	MaxConnections int
	// HeadTimeout bounds the head phase of a ListenHead connection, from its accept: once it
	// passed, the HeadFunc is called a last time with final set. 0 is DefaultHeadTimeout.
	HeadTimeout time.Duration
	// MaxHeadBytes bounds the bytes a HeadFunc is shown; a head that reaches it is final. 0
	// is DefaultMaxHeadBytes.
	MaxHeadBytes int
}

// Accepted describes a connection the Group accepted.
type Accepted struct {
	Remote netip.AddrPort // the client
	Local  netip.AddrPort // the address the client connected to
	// Loop is the index of the loop that accepted it (0 to Group.Loops()-1): a HeadFunc that
	// keeps state per loop, used only on that loop's thread, takes it by this.
	Loop int
}

// Target is where a RouteFunc sends an accepted connection.
type Target struct {
	// Addr is the upstream, IPv4 or IPv6.
	Addr netip.AddrPort
	// Done, when set, is called once on the loop's thread when the pair has ended and both
	// sockets are closed. It must not block, nor call Listen or Shutdown.
	Done func(Result)
	// Connected, when set, is called on the loop's thread once the upstream connect to addr
	// succeeded, before any byte is relayed. It must not block.
	Connected func(addr netip.AddrPort)
	// Check, when set, is called on the loop's thread once the upstream connect to remote
	// succeeded, with the upstream socket's local address (one getsockname), before Connected;
	// an error ends the pair with it as Result.ConnectErr, without Retry: for a guard that
	// knows only once connected where the connect went. It must not block.
	Check func(remote, local netip.AddrPort) error
	// Retry, when set, is called on the loop's thread after each failed upstream connect
	// (err as Result.ConnectErr would be); a true answer connects to the address it returns
	// instead, with a new connect timeout, and false ends the pair with err. It must not block.
	Retry func(err error) (netip.AddrPort, bool)
	// Handoff, when set, takes the connection out of the loop: nothing is relayed, Addr, Done
	// and the rest are ignored, and Handoff runs on a goroutine of the process pool (gopool)
	// with the client as a net.Conn in Go's netpoller, for a caller that serves some
	// connections itself (HTTP, TLS). The loop has read nothing of the client: every byte it
	// sent is still in the socket. A handed-off connection leaves the Group's accounting
	// (Open, MaxConnections) and Shutdown does not wait for it.
	Handoff func(net.Conn)
	// Serve, when set (ListenHead only, and Handoff unset), keeps the connection on the loop
	// for a Handler of the caller's: the client becomes a Conn, every byte it sent still in
	// its socket, and Serve.Ready is called at once. It stays in the Group's accounting (Open,
	// MaxConnections) until the Handler closes or hands it off, and a drain waits for it.
	Serve Handler
	// Consume is how many bytes of the peeked head the loop reads and drops before it
	// connects (a CONNECT head); whatever the client sent beyond them is relayed. ListenHead
	// only; more than the head peeked ends the pair before its connect (Done, with Err set).
	Consume int
	// Reply is written to the client once the upstream connected (after Check), before any
	// relayed byte: the 200 of a CONNECT. Result.Down does not count it.
	Reply []byte
	// Refuse, when set, gives the bytes written to the client before it is closed when the
	// connect failed for good (after Retry said no, or Check refused): a CONNECT's 502/503.
	// The write is one non-blocking write, best effort: a short write is not completed, and
	// a client that sent bytes the loop never read sees the close as a reset. It runs on the
	// loop's thread and must not block.
	Refuse func(err error) []byte
}

// Events are what an edge of a Conn's socket reported; edge-triggered, so the Handler acts
// until a read or write says EAGAIN.
type Events uint32

// The Events bits.
const (
	// Readable is EPOLLIN, Writable EPOLLOUT (their Linux values, which a test checks).
	Readable Events = 0x1
	Writable Events = 0x4
	// Hangup: the peer ended its side (EPOLLRDHUP) or the socket hung up (EPOLLHUP) or
	// failed (EPOLLERR).
	Hangup Events = 0x2000 | 0x10 | 0x8
)

// Handler serves the Conns of a Target.Serve and those it dials. Its methods run on the loop's
// thread and must not block, nor call Listen or Shutdown.
type Handler interface {
	// Ready reports an edge of c's socket; for a Conn a Dial opened, the first Writable (or
	// Hangup) ends the connect: SocketError then says how it went.
	Ready(c *Conn, ev Events)
	// Expired reports that c's deadline (SetDeadline) passed.
	Expired(c *Conn)
	// Drain reports that the Group drains (now false: finish what is in flight, close what is
	// idle) or stops (now true: c is closed once Drain returns, if it did not close it).
	Drain(c *Conn, now bool)
}

// RouteFunc picks the upstream of an accepted connection; false closes the client instead. It
// runs on a loop's thread: it must not block, nor call Listen or Shutdown.
type RouteFunc func(Accepted) (Target, bool)

// HeadFunc decides about a connection of a ListenHead listener from the bytes its client sent
// first, peeked, not read: head holds all of them so far, and is valid only during the call.
// final is true when no more will be waited for (MaxHeadBytes is reached, the client ended its
// side, the head timeout passed, or the Group drains). It runs on the loop's thread and must
// not block, nor call Listen or Shutdown.
type HeadFunc func(acc Accepted, head []byte, final bool) Verdict

// Verdict is a HeadFunc's answer.
type Verdict struct {
	// More waits for more bytes, then calls the HeadFunc again; ignored when final.
	More bool
	// Target is where to relay (its Addr set), or Handoff; a Target with neither closes the
	// client, without calling its Done.
	Target Target
	// Reject, when set (and Target has neither Addr nor Handoff), is written to the client,
	// one non-blocking write, best effort, before it is closed.
	Reject []byte
}

// Result is how a pair ended.
type Result struct {
	// Up and Down are the bytes relayed client→upstream and upstream→client: neither the head
	// a ListenHead Target consumed nor its Reply.
	Up, Down int64
	// ConnectErr is why the upstream connect failed (errors.Is ErrConnectTimeout, or a
	// syscall.Errno such as ECONNREFUSED); the client was closed without a byte relayed.
	ConnectErr error
	// Err is why a relaying pair ended early: ErrIdleTimeout, ErrShutdown or a read or write
	// error (ECONNRESET for a client that reset while its upstream connect was under way).
	// Nil when both directions ended with an EOF.
	Err error
	// Duration is from the accept to the close, on the loop's clock (read once per batch of
	// events).
	Duration time.Duration
}

// Stats are the Group's counters since New. Accepted counts every accepted connection,
// Overflow and Rejected included.
type Stats struct {
	Accepted        int64 // connections accepted
	Overflow        int64 // closed at once: MaxConnections reached
	Rejected        int64 // closed at once: the RouteFunc said no, or a Verdict closed it
	Handoffs        int64 // handed to Target.Handoff, failed conversions included
	Pairs           int64 // pairs begun: upstream connects started for a Target.Addr
	ConnectFailures int64 // upstream connects that failed, each attempt of a Retry, timeouts not included
	ConnectTimeouts int64 // upstream connects that timed out
	IdleTimeouts    int64 // pairs closed by the idle timeout
	AcceptErrors    int64 // accept errors other than EAGAIN, each a backoff of that listener
	HeadWaits       int64 // head-phase connections a More registered with epoll
	HeadTimeouts    int64 // head phases ended by HeadTimeout
	HeadFull        int64 // head phases ended by MaxHeadBytes
	HeadErrors      int64 // head-phase connections closed on a read error (a reset) or a bad Consume
	Served          int64 // connections kept for a Target.Serve Handler
	Dials           int64 // connects a Handler started (Conn.Dial), failed ones included
	Open            int64 // pairs open now, head-phase connections and Serve clients included
	BytesUp         int64 // bytes relayed client→upstream
	BytesDown       int64 // bytes relayed upstream→client
}

// Errors in Result and from Group's methods.
var (
	ErrIdleTimeout    = errors.New("evloop: idle timeout")
	ErrConnectTimeout = errors.New("evloop: connect timeout")
	ErrShutdown       = errors.New("evloop: group shut down")
	ErrUnsupported    = errors.New("evloop: needs Linux epoll")
)

// maxTick bounds the sweep period of the coarse timer.
const maxTick = 100 * time.Millisecond

// withDefaults fills the zero fields of o.
func (o Options) withDefaults(gomaxprocs int) Options {
	if o.Loops <= 0 {
		o.Loops = gomaxprocs
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.HeadTimeout <= 0 {
		o.HeadTimeout = DefaultHeadTimeout
	}
	if o.MaxHeadBytes <= 0 {
		o.MaxHeadBytes = DefaultMaxHeadBytes
	}
	if o.MaxConnections < 0 {
		o.MaxConnections = 0
	}
	return o
}

// tick is the sweep period: fine enough for the shorter timeout, at most maxTick.
func (o Options) tick() time.Duration {
	t := min(maxTick, o.ConnectTimeout/4, o.IdleTimeout/4, o.HeadTimeout/4)
	return max(t, time.Millisecond)
}
