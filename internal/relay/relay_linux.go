package relay

import (
	"errors"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// move copies src to dst until src ends. While src has nothing to read it waits in the runtime's
// poller holding no buffer and no splice pipe (a blocked splice(2) would hold a pipe pair, four
// descriptors per tunnel). A burst is read into a pooled buffer taken only once the socket is
// readable, one read(2) that also tells the end of stream, and written on: the few hundred bytes of
// a short exchange cost a read and a write, as in HAProxy. A burst that fills the buffer marks a
// bulk stream, which between TCP sockets is spliced, exactly what the socket holds each time, until
// a burst smaller than the buffer shows the stream slowed down.
func (r *relay) move(dst, src net.Conn) (int64, error) {
	sc, ok := src.(syscall.Conn)
	if !ok {
		return r.copyBlocking(dst, src)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return r.copyBlocking(dst, src)
	}
	srcTCP, _ := src.(*net.TCPConn)
	dstTCP, _ := dst.(*net.TCPConn)
	splice := srcTCP != nil && dstTCP != nil
	lr := &io.LimitedReader{R: src}
	var written int64
	bulk := false
	for {
		var n int64
		if bulk && splice {
			avail, err := waitReadable(rc)
			if err != nil || avail == 0 {
				return written, err // avail 0: end of stream
			}
			lr.N = int64(avail)
			n, err = dstTCP.ReadFrom(lr)
			written += n
			r.touch()
			if err != nil {
				return written, err
			}
			bulk = avail >= bufSize
			continue
		}
		bp, got, err := readReady(rc)
		if err != nil || got == 0 {
			return written, err // got 0: end of stream
		}
		r.touch()
		m, err := dst.Write((*bp)[:got])
		bufPool.Put(bp)
		written += int64(m)
		r.touch()
		if err != nil {
			return written, err
		}
		bulk = got == bufSize
	}
}

// readReady waits until the socket has data or has ended, and reads what it holds into a pooled
// buffer taken only once the socket is readable, so that the wait holds none. It returns the
// buffer, for the caller to give back, and how many bytes it read: 0 at end of stream (and then
// no buffer).
func readReady(rc syscall.RawConn) (*[]byte, int, error) {
	var bp *[]byte
	var n int
	var opErr error
	err := rc.Read(func(fd uintptr) bool {
		if bp == nil {
			bp = bufPool.Get().(*[]byte)
		}
		for {
			n, opErr = unix.Read(int(fd), *bp)
			if opErr != unix.EINTR {
				break
			}
		}
		if opErr == unix.EAGAIN {
			bufPool.Put(bp)
			bp = nil
			return false
		}
		return true
	})
	if err == nil && opErr != nil {
		err = &net.OpError{Op: "read", Net: "tcp", Err: opErr}
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
