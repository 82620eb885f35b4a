package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/meshentry/meshentry/internal/rawio"
)

// move writes the greeting, when there is one, and copies src to dst until src ends. While src
// has nothing to read it waits in the runtime's poller holding no buffer and no splice pipe (a
// blocked splice(2) would hold a pipe pair, four descriptors per tunnel). A burst is read into a
// pooled buffer taken only once the socket is readable, one read(2) that also tells the end of
// stream, and written on: the few hundred bytes of a short exchange cost a read and a write, as in
// HAProxy. A burst that fills the buffer marks a bulk stream, which between TCP sockets is
// spliced, exactly what the socket holds each time, until a smaller burst shows it slowed down.
func (r *relay) move(dst, src net.Conn, greeting []byte) (int64, error) {
	sc, ok := src.(syscall.Conn)
	var rc syscall.RawConn
	var err error
	if ok {
		rc, err = sc.SyscallConn()
	}
	if !ok || err != nil || len(greeting) > bufSize/2 {
		if err := greet(dst, greeting); err != nil {
			return 0, err
		}
		greeting = nil
	}
	if !ok || err != nil {
		return r.copyBlocking(dst, src)
	}
	var ws rawio.Socket // dst's writes, raw when it is a socket
	ws.Bind(dst)
	w := io.Writer(&ws)
	srcTCP, _ := src.(*net.TCPConn)
	dstTCP, _ := dst.(*net.TCPConn)
	splice := srcTCP != nil && dstTCP != nil
	lr := &io.LimitedReader{R: src}
	br := newBurstReader(rc)
	var written int64
	bulk := false
	for {
		if bulk && splice {
			avail, err := waitReadable(rc)
			if err != nil || avail == 0 {
				return written, err // avail 0: end of stream
			}
			lr.N = int64(avail)
			n, err := dstTCP.ReadFrom(lr)
			written += n
			r.touch()
			if err != nil {
				return written, err
			}
			bulk = avail >= bufSize
			continue
		}
		n, full, err := r.burst(w, br, greeting)
		greeting = nil
		if err == errBlocked {
			continue
		}
		written += n
		if err != nil || n == 0 {
			return written, err // nothing read, no error: end of stream
		}
		bulk = full
	}
}

// errBlocked is burst's word that the greeting went out alone, src having nothing yet.
var errBlocked = errors.New("relay: source empty")

// burst moves one burst from src to dst, after the greeting when there is one: in the same
// write when src has bytes already, alone before waiting when it has none (errBlocked), alone
// at end of stream (0, nil). It reports the bytes relayed, not counting the greeting, and whether
// the burst filled the buffer.
func (r *relay) burst(dst io.Writer, br *burstReader, greeting []byte) (int64, bool, error) {
	bp, got, err := br.read(greeting)
	if bp == nil {
		if gerr := greet(dst, greeting); gerr != nil {
			return 0, false, gerr
		}
		if err == nil && got < 0 {
			return 0, false, errBlocked
		}
		return 0, false, err
	}
	r.touch()
	m, err := dst.Write((*bp)[:len(greeting)+got])
	full := len(greeting)+got == len(*bp)
	bufPool.Put(bp)
	if m < len(greeting) {
		return 0, false, fmt.Errorf("%w: %w", ErrGreeting, err)
	}
	r.touch()
	return int64(m - len(greeting)), full, err
}

// burstReader waits until a socket has data or has ended, and reads what it holds into a pooled
// buffer taken only once the socket is readable, so that the wait holds none; the buffer begins
// with prefix, the read filling the rest. One serves a direction for its whole life: the read
// func handed to the poller is made once, not per burst.
type burstReader struct {
	rc      syscall.RawConn
	prefix  []byte
	bp      *[]byte
	n       int
	err     error
	blocked bool
	fn      func(fd uintptr) bool
}

func newBurstReader(rc syscall.RawConn) *burstReader {
	br := &burstReader{rc: rc}
	br.fn = br.readFD
	return br
}

// readFD is the poller's read func: done when it read bytes, the end or an error.
func (br *burstReader) readFD(fd uintptr) bool {
	if br.bp == nil {
		br.bp = bufPool.Get().(*[]byte)
	}
	off := copy(*br.bp, br.prefix)
	var e syscall.Errno
	br.n, e = rawio.ReadFD(fd, (*br.bp)[off:])
	br.err = nil
	if e != 0 {
		br.err = e
	}
	if e == syscall.EAGAIN {
		bufPool.Put(br.bp)
		br.bp = nil
		br.blocked = br.prefix != nil
		return br.blocked
	}
	return true
}

// read returns the buffer, for the caller to give back, and how many bytes it read; no buffer at
// end of stream (0) or on error. With a prefix it does not wait: an empty socket returns no buffer
// and -1, for the prefix to go out alone first.
func (br *burstReader) read(prefix []byte) (*[]byte, int, error) {
	br.prefix, br.bp, br.n, br.err, br.blocked = prefix, nil, 0, nil, false
	err := br.rc.Read(br.fn)
	bp, n := br.bp, br.n
	br.bp, br.prefix = nil, nil
	if br.blocked && err == nil {
		return nil, -1, nil
	}
	if err == nil && br.err != nil {
		err = &net.OpError{Op: "read", Net: "tcp", Err: br.err}
	}
	if err != nil || n <= 0 {
		if bp != nil {
			bufPool.Put(bp)
		}
		return nil, 0, err
	}
	return bp, n, nil
}

// waitReadable blocks until the socket has data or has ended, and returns how many bytes it holds
// (0 at end of stream). SIOCINQ (FIONREAD for sockets) says how much is queued; only when nothing
// is does a one-byte MSG_PEEK tell an empty socket from one that ended, so the wait itself needs no
// buffer, and a busy stream costs one ioctl per move.
func waitReadable(rc syscall.RawConn) (int, error) {
	var avail int
	var opErr error
	var probe [1]byte
	err := rc.Read(func(fd uintptr) bool {
		if avail, opErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ); opErr != nil || avail > 0 {
			return true
		}
		n, _, err := unix.Recvfrom(int(fd), probe[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			return false
		case err != nil:
			opErr = err
		case n > 0:
			// Data arrived between the two calls.
			avail, opErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			avail = max(avail, 1)
		}
		// n == 0 with no error: the peer ended its stream.
		return true
	})
	if err != nil {
		return 0, err
	}
	if opErr != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: opErr}
	}
	return avail, nil
}
