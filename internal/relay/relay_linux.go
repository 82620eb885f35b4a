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
// descriptors per tunnel); once data is there it moves exactly what the socket holds, so the move
// never blocks on src. Between TCP sockets the move is a splice; otherwise a pooled buffer.
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
	lr := &io.LimitedReader{R: src}
	var written int64
	for {
		avail, err := waitReadable(rc)
		if err != nil {
			return written, err
		}
		if avail == 0 {
			return written, nil // end of stream
		}
		var n int64
		if srcTCP != nil && dstTCP != nil {
			lr.N = int64(avail)
			n, err = dstTCP.ReadFrom(lr)
		} else {
			n, err = r.moveBuffered(dst, src, avail)
		}
		written += n
		r.touch()
		if err != nil {
			return written, err
		}
	}
}

// moveBuffered moves up to avail bytes, known to be readable, through a pooled buffer that goes
// back to the pool before the next wait.
func (r *relay) moveBuffered(dst io.Writer, src io.Reader, avail int) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	n, err := src.Read((*bp)[:min(avail, len(*bp))])
	if n > 0 {
		m, werr := dst.Write((*bp)[:n])
		if werr != nil {
			return int64(m), werr
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return int64(n), err
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
