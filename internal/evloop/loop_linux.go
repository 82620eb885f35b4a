package evloop

import (
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loop is one event loop: a goroutine, its epoll instance and everything
// registered there. All its fields but the submission queue and the counters are the loop
// goroutine's alone.
type loop struct {
	g      *Group
	index  int             // in g.loops
	ep     int             // the epoll instance
	epFile *os.File        // ep in the Go netpoller, to park on when idle
	epConn syscall.RawConn // epFile's
	// pollReady is the callback of epConn.Read, made once: it sets ready to what poll found.
	pollReady func(uintptr) bool
	ready     int
	deadline  time.Duration // of epFile, -1 for none
	waits     int           // calls of wait and epoll_pwaits made, for the tests
	polls     int
	wake      int // an eventfd that other goroutines write to hand the loop work
	events    []unix.EpollEvent

	// slots maps a descriptor to what owns it. Each registration takes a new generation,
	// carried in the event's data beside the descriptor: an event whose generation is not its
	// slot's is for a socket closed earlier in the batch, whose number an accept may have
	// given to another since, and is dropped.
	slots []slot
	gen   int32

	base                              time.Time     // the loop clock's zero
	now                               time.Duration // the loop clock, read once per batch
	tick, connectTimeout, idleTimeout time.Duration
	nextSweep                         time.Duration
	connecting, idle                  pairList
	resting                           []backoff
	listeners                         []*listener

	// heads are the head-phase connections registered with epoll, in accept order: their
	// head timeout runs from the accept.
	heads        pairList
	headTimeout  time.Duration
	headBuf      []byte // scratch for the peeks, MaxHeadBytes long, made at the first
	maxHeadBytes int

	open                    int // pairs of this loop
	bufSize                 int
	freeBufs                [][]byte
	freePairs               []*pair
	buffersOut, buffersPeak int                 // buffers held by directions; the most at once
	bufferOverruns          int                 // times more than two per pair were held: never
	sa                      unix.RawSockaddrAny // scratch for the socket calls
	draining, stopping      bool

	// conns are the Conns a Handler serves (Target.Serve clients and their dials); timers
	// holds those with a deadline.
	conns     connList
	timers    connHeap
	freeConns []*Conn
	serial    uint64

	stats loopStats

	mu      sync.Mutex // guards the three below
	queue   []func()
	woken   bool // the eventfd was written since the loop last took the queue
	stopped bool // the loop ended: nothing more is taken
	done    chan struct{}
}

// slot is what a registered descriptor belongs to: a side of a pair, or a listener.
type slot struct {
	gen  int32
	side int8
	pair *pair
	lis  *listener
	conn *Conn
}

// listener is one loop's SO_REUSEPORT socket of a Listen.
type listener struct {
	fd       int32
	addr     netip.AddrPort // the bound address
	wildcard bool           // bound to an unspecified address: each Local comes from getsockname
	route    RouteFunc
	head     HeadFunc // set for a ListenHead listener, instead of route
	resting  bool     // out of epoll after an accept error
	closed   bool
}

// loopStats are a loop's counters. Only the loop writes them, so a plain load and store (bump)
// is enough, without the locked read-modify-write of Add; Stats loads them from anywhere.
type loopStats struct {
	_                                [64]byte // off the cache line of the loop's hot fields
	accepted, overflow, rejected     atomic.Int64
	handoffs, pairs                  atomic.Int64
	connectFailures, connectTimeouts atomic.Int64
	idleTimeouts, acceptErrors       atomic.Int64
	bytesUp, bytesDown               atomic.Int64
	headWaits, headTimeouts          atomic.Int64
	headFull, headErrors             atomic.Int64
	served, dials                    atomic.Int64
}

func bump(c *atomic.Int64, n int64) { c.Store(c.Load() + n) }

const (
	pairEvents     = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
	listenerEvents = unix.EPOLLIN | unix.EPOLLET
	eventBatch     = 256
)

func newLoop(g *Group, o Options, index int) (*loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &loop{
		g: g, index: index, ep: ep, wake: -1, events: make([]unix.EpollEvent, eventBatch), deadline: -1,
		base: time.Now(), tick: o.tick(), connectTimeout: o.ConnectTimeout, idleTimeout: o.IdleTimeout,
		bufSize: o.BufferSize, done: make(chan struct{}), headTimeout: o.HeadTimeout, maxHeadBytes: o.MaxHeadBytes,
	}
	l.heads.init()
	l.conns.init()
	l.connecting.init()
	l.idle.init()
	l.pollReady = func(uintptr) bool {
		l.ready = l.poll()
		return l.ready > 0
	}
	if err := l.openDescriptors(); err != nil {
		l.closeDescriptors()
		return nil, err
	}
	return l, nil
}

// openDescriptors makes the eventfd and puts the epoll descriptor in the netpoller.
func (l *loop) openDescriptors() error {
	if err := unix.SetNonblock(l.ep, true); err != nil {
		return err
	}
	l.epFile = os.NewFile(uintptr(l.ep), "evloop-epoll")
	// A deadline is refused on a descriptor the netpoller did not take; parking on it would
	// then spin.
	if err := l.epFile.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	var err error
	if l.epConn, err = l.epFile.SyscallConn(); err != nil {
		return err
	}
	if l.wake, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return err
	}
	ev := unix.EpollEvent{Events: listenerEvents, Fd: int32(l.wake)}
	return unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, l.wake, &ev)
}

func (l *loop) closeDescriptors() {
	if l.wake >= 0 {
		unix.Close(l.wake)
	}
	if l.epFile != nil {
		l.epFile.Close()
	} else {
		unix.Close(l.ep)
	}
}

// run is the loop's goroutine.
func (l *loop) run() {
	defer close(l.done)
	for !l.stopping {
		n := l.wait()
		l.now = time.Since(l.base)
		for i := range n {
			l.dispatch(&l.events[i])
		}
		if l.now >= l.nextSweep {
			l.sweep()
		}
		if l.draining && l.open == 0 {
			l.stopping = true
		}
	}
	l.teardown()
}

// wait returns the number of ready events. epConn.Read first calls pollReady, a raw
// epoll_pwait that does not wait, a plain system call the scheduler never sees, so a busy loop
// runs without a hand-off. Only when nothing is ready does it park, on the Go netpoller, which
// watches the loop's epoll descriptor (readable while it holds events): parking hands the P on
// at once, where a blocking epoll_wait would keep it until sysmon retakes it (20 µs to 10 ms
// later), stalling the process's other goroutines behind idle loops, all the more with a loop
// per P. No poll comes before the Read: the Read's own is the first after it re-armed the
// descriptor's readiness, and one before it would be a second epoll_pwait of every park
// (an event between the two is seen by the Read's). The read deadline serves the timers.
func (l *loop) wait() int {
	l.waits++
	if d := l.nextDeadline(); d != l.deadline {
		at := time.Time{}
		if d >= 0 {
			at = l.base.Add(d)
		}
		l.epFile.SetReadDeadline(at)
		l.deadline = d
	}
	l.ready = 0
	l.epConn.Read(l.pollReady) // an error is the deadline: the timers are due
	return l.ready
}

// poll is epoll_pwait without waiting.
func (l *loop) poll() int {
	l.polls++
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])),
		uintptr(len(l.events)), 0, 0, 0)
	if e != 0 {
		return 0 // EINTR
	}
	return int(n)
}

func (l *loop) dispatch(ev *unix.EpollEvent) {
	if int(ev.Fd) == l.wake {
		l.runQueue()
		return
	}
	s := l.owner(ev)
	switch {
	case s == nil:
	case s.conn != nil:
		l.connEvent(s.conn, ev.Events)
	case s.pair != nil:
		l.pairEvent(s.pair, int(s.side), ev.Events)
	case s.lis != nil:
		l.accept(s.lis)
	}
}

// owner is the slot an event is for; nil for an event of a socket closed earlier in this
// batch, even when an accept already gave its number to another.
func (l *loop) owner(ev *unix.EpollEvent) *slot {
	if int(ev.Fd) >= len(l.slots) {
		return nil
	}
	s := &l.slots[ev.Fd]
	if s.gen == 0 || s.gen != ev.Pad {
		return nil
	}
	return s
}

// register adds fd to epoll, edge-triggered, once for its whole life: no epoll_ctl MOD after.
func (l *loop) register(fd int32, s slot) error {
	l.gen++
	if l.gen == 0 {
		l.gen = 1 // 0 marks a free slot
	}
	s.gen = l.gen
	if int(fd) >= len(l.slots) {
		n := max(int(fd)+1, 2*len(l.slots), 64)
		l.slots = append(l.slots, make([]slot, n-len(l.slots))...)
	}
	l.slots[fd] = s
	events := uint32(pairEvents)
	if s.lis != nil {
		events = listenerEvents
	}
	ev := unix.EpollEvent{Events: events, Fd: fd, Pad: s.gen}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		l.slots[fd] = slot{}
		return err
	}
	return nil
}

// forget frees fd's slot before the descriptor is closed.
func (l *loop) forget(fd int32) {
	if int(fd) < len(l.slots) {
		l.slots[fd] = slot{}
	}
}

// submit hands f to the loop's goroutine; false when the loop has ended. The eventfd is written
// under the lock, so that it cannot be a descriptor the ended loop closed and another file got.
func (l *loop) submit(f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.queue = append(l.queue, f)
	if !l.woken {
		l.woken = true
		one := [8]byte{1}
		unix.Write(l.wake, one[:])
	}
	return true
}

func (l *loop) runQueue() {
	var count [8]byte
	unix.Read(l.wake, count[:])
	l.mu.Lock()
	q := l.queue
	l.queue, l.woken = nil, false
	l.mu.Unlock()
	for _, f := range q {
		f()
	}
}

// accept takes the listener's connections until EAGAIN, as its edge asks.
func (l *loop) accept(li *listener) {
	for !li.closed && !li.resting {
		fd, e := sysAccept(li.fd, &l.sa)
		switch e {
		case 0:
			bump(&l.stats.accepted, 1)
			l.admit(li, fd)
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED:
		default:
			// EMFILE, ENFILE, ENOBUFS...: the connection stays in the backlog and the edge
			// would come straight back; rest the listener rather than spin.
			bump(&l.stats.acceptErrors, 1)
			l.rest(li)
			return
		}
	}
}

// admit bounds, routes and starts an accepted connection, whose peer is in l.sa.
func (l *loop) admit(li *listener, fd int32) {
	remote := addrOf(&l.sa)
	if open := l.g.open.Add(1); l.g.maxOpen > 0 && open > l.g.maxOpen {
		l.g.open.Add(-1)
		bump(&l.stats.overflow, 1)
		sysClose(fd)
		return
	}
	local := li.addr
	if li.wildcard && sysLocal(fd, &l.sa) == 0 {
		local = addrOf(&l.sa)
	}
	acc := Accepted{Remote: remote, Local: local, Loop: l.index}
	if li.head != nil {
		l.admitHead(li.head, fd, acc)
		return
	}
	t, ok := li.route(acc)
	if !ok {
		l.g.open.Add(-1)
		bump(&l.stats.rejected, 1)
		sysClose(fd)
		return
	}
	if t.Handoff != nil {
		l.g.open.Add(-1)
		l.handoff(fd, t.Handoff)
		return
	}
	l.startPair(fd, t)
}

// addListener starts accepting on li; on a loop that drains it closes li instead.
func (l *loop) addListener(li *listener) error {
	if l.draining || l.stopping {
		li.closed = true
		unix.Close(int(li.fd))
		return ErrShutdown
	}
	if err := l.register(li.fd, slot{lis: li}); err != nil {
		li.closed = true
		unix.Close(int(li.fd))
		return err
	}
	l.listeners = append(l.listeners, li)
	return nil
}

func (l *loop) closeListener(li *listener) {
	if li.closed {
		return
	}
	li.closed = true
	if li.resting {
		l.resting = slices.DeleteFunc(l.resting, func(b backoff) bool { return b.lis == li })
	} else {
		l.forget(li.fd)
	}
	unix.Close(int(li.fd))
	l.listeners = slices.DeleteFunc(l.listeners, func(x *listener) bool { return x == li })
}

// rest takes li out of epoll for acceptBackoff.
func (l *loop) rest(li *listener) {
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, int(li.fd), nil)
	l.forget(li.fd)
	li.resting = true
	l.resting = append(l.resting, backoff{lis: li, resume: l.now + acceptBackoff})
}

// resumeListener puts a rested li back; adding it reports the backlog it holds, if any.
func (l *loop) resumeListener(li *listener) {
	li.resting = false
	if err := l.register(li.fd, slot{lis: li}); err != nil {
		bump(&l.stats.acceptErrors, 1)
		l.rest(li)
	}
}

// drain stops accepting and lets the open pairs run out; the loop ends when none is left. A
// connection still in its head phase is decided at once, its HeadFunc called as final: it was
// accepted before the drain, as the connections a Go server drains still get their first
// request served, and the HeadFunc knows best whether to relay, hand off or close it.
func (l *loop) drain() {
	for len(l.listeners) > 0 {
		l.closeListener(l.listeners[0])
	}
	l.draining = true
	for p := l.heads.first(); p != nil; p = l.heads.first() {
		l.peekHead(p, true)
	}
	l.drainConns(false)
}

// teardown ends what is left: pairs with ErrShutdown, then the loop's own descriptors. Work
// submitted meanwhile still runs, to see the loop stopped.
func (l *loop) teardown() {
	l.now = time.Since(l.base) // for the Durations of the pairs cut
	for len(l.listeners) > 0 {
		l.closeListener(l.listeners[0])
	}
	for p := l.heads.first(); p != nil; p = l.heads.first() {
		l.closeHead(p)
	}
	l.drainConns(true)
	for _, list := range []*pairList{&l.connecting, &l.idle} {
		for p := list.first(); p != nil; p = list.first() {
			l.finish(p, nil, ErrShutdown)
		}
	}
	l.mu.Lock()
	l.stopped = true
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, f := range q {
		f()
	}
	l.closeDescriptors()
}
