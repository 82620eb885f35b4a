package httpfwd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// copyError says which side of a body copy failed, so the engine knows whom to blame: a failed
// read of a request body is the client's doing, a failed write of it the upstream's.
type copyError struct {
	read bool // the source failed (read error or bad framing); otherwise the destination
	err  error
}

func (e *copyError) Error() string { return e.err.Error() }
func (e *copyError) Unwrap() error { return e.err }

// readFailed reports a copy that failed on its source side. It is a function of its own so
// that the error target escapes only on the error path.
func readFailed(err error) bool {
	if err == nil {
		return false
	}
	var ce *copyError
	return errors.As(err, &ce) && ce.read
}

func readFail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &copyError{read: true, err: err}
}

// pipe moves one body from a buffered reader to a buffered writer. Before it blocks on the
// source it flushes the destination, so the next hop never waits for bytes we hold, and it
// refreshes both connections' inactivity deadlines.
type pipe struct {
	src     *bufio.Reader
	srcConn net.Conn
	dst     *bufio.Writer
	dstConn net.Conn
	idle    time.Duration
	moved   int64 // payload bytes moved, for the access log
	waited  bool  // the copy waited for its source, so the last write deadline may be used up
	// stop, when set, makes the pipe give up before its next wait: the owner set it and
	// then expired the source's deadline to end a copy running on another goroutine.
	stop atomic.Bool
	// bufs supplies the large buffer for bulk transfers, taken on first use.
	bufs *sync.Pool
	buf  *[]byte
	num  [16]byte // scratch for chunk sizes
	// chunks decodes a chunked body's framing.
	chunks chunkedReader
	// drained, when set, is set once a Content-Length body was read whole from the source.
	drained *atomic.Bool
}

// chunkMode says what copyChunked sends of a chunked body.
type chunkMode uint8

const (
	// chunkCanonical sends the framing as the engine read it: sizes in plain hex, no chunk
	// extensions, trailers as received. Request bodies go upstream this way, so no upstream
	// can frame them differently (extensions such as an unterminated quoted string are a
	// known smuggling vector).
	chunkCanonical chunkMode = iota
	// chunkRelay passes chunk lines on as received when their extensions are well-formed
	// (RFC 9112 §7.1.1), and canonical otherwise. Responses are relayed this way.
	chunkRelay
	// chunkPayload sends only the payload, for an HTTP/1.0 recipient; trailers are dropped.
	chunkPayload
)

// reset points the pipe at a new source and destination.
func (p *pipe) reset(src *bufio.Reader, srcConn net.Conn, dst *bufio.Writer, dstConn net.Conn, idle time.Duration) {
	p.src, p.srcConn, p.dst, p.dstConn, p.idle, p.moved, p.waited = src, srcConn, dst, dstConn, idle, 0, false
	p.stop.Store(false)
}

// readAll tells the pipe's drained flag, when it has one, that the source has nothing more to
// give once left is 0: said before the last bytes are written, so before the destination can
// answer them.
func (p *pipe) readAll(left int64) {
	if left == 0 && p.drained != nil {
		p.drained.Store(true)
	}
}

// scratch returns the bulk transfer buffer.
func (p *pipe) scratch() []byte {
	if p.buf == nil {
		if b, ok := p.bufs.Get().(*[]byte); ok {
			p.buf = b
		} else {
			b := make([]byte, bulkSize)
			p.buf = &b
		}
	}
	return *p.buf
}

// release gives the bulk buffer back, so idle connections do not hold one.
func (p *pipe) release() {
	if p.buf != nil {
		p.bufs.Put(p.buf)
		p.buf = nil
	}
}

// errStopped ends a copy its owner no longer needs.
var errStopped = errors.New("copy stopped")

// arm flushes the destination and refreshes deadlines before a read that may block. The flush
// gets a deadline of its own: the last one was set before the last read, which may have used
// most of it.
func (p *pipe) arm() error {
	p.waited = true
	if err := p.dstConn.SetWriteDeadline(time.Now().Add(p.idle)); err != nil {
		return &copyError{err: err}
	}
	if err := p.dst.Flush(); err != nil {
		return &copyError{err: err}
	}
	if err := p.srcConn.SetReadDeadline(time.Now().Add(p.idle)); err != nil {
		return &copyError{read: true, err: err}
	}
	if p.stop.Load() {
		return &copyError{read: true, err: errStopped}
	}
	return nil
}

// write sends b to the destination. A write that reaches the connection, rather than the
// buffer, gets a fresh deadline, since it follows a read that may have used up the last one.
func (p *pipe) write(b []byte) error {
	if len(b) > p.dst.Available() {
		if err := p.dstConn.SetWriteDeadline(time.Now().Add(p.idle)); err != nil {
			return &copyError{err: err}
		}
	}
	if _, err := p.dst.Write(b); err != nil {
		return &copyError{err: err}
	}
	return nil
}

// copyN moves exactly n bytes; the source ending early is an error.
func (p *pipe) copyN(n int64) error {
	for n > 0 {
		if p.src.Buffered() == 0 {
			if err := p.arm(); err != nil {
				return err
			}
			if n >= int64(p.src.Size()) {
				// Large remainder: read straight into the scratch buffer, bypassing the
				// reader's smaller one, and write it straight through the (empty) writer.
				buf := p.scratch()
				k, err := p.src.Read(buf[:min(int64(len(buf)), n)])
				if k > 0 {
					n -= int64(k)
					p.moved += int64(k)
					p.readAll(n)
					if err := p.write(buf[:k]); err != nil {
						return err
					}
				}
				if err != nil {
					return readFail(err)
				}
				continue
			}
			if _, err := p.src.Peek(1); err != nil {
				return readFail(err)
			}
		}
		b, _ := p.src.Peek(int(min(int64(p.src.Buffered()), n)))
		p.readAll(n - int64(len(b)))
		if err := p.write(b); err != nil {
			return err
		}
		p.src.Discard(len(b))
		n -= int64(len(b))
		p.moved += int64(len(b))
	}
	return nil
}

// copyToEOF moves everything until the source closes.
func (p *pipe) copyToEOF() error {
	for {
		if p.src.Buffered() == 0 {
			if err := p.arm(); err != nil {
				return err
			}
			buf := p.scratch()
			k, err := p.src.Read(buf)
			if k > 0 {
				p.moved += int64(k)
				if err := p.write(buf[:k]); err != nil {
					return err
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return &copyError{read: true, err: err}
			}
			continue
		}
		b, _ := p.src.Peek(p.src.Buffered())
		if err := p.write(b); err != nil {
			return err
		}
		p.src.Discard(len(b))
		p.moved += int64(len(b))
	}
}

// chunkLine returns the next line including its LF, arming the pipe first when it is not
// buffered whole; the slice is valid until the next read.
func (p *pipe) chunkLine() ([]byte, error) {
	if b, _ := p.src.Peek(p.src.Buffered()); bytes.IndexByte(b, '\n') < 0 {
		if err := p.arm(); err != nil {
			return nil, err
		}
	}
	line, err := p.src.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, badChunk("chunk line too long")
	}
	if err != nil {
		return nil, readFail(err)
	}
	return line, nil
}

// chunkPeek returns the next n bytes, arming the pipe first when they are not buffered.
func (p *pipe) chunkPeek(n int) ([]byte, error) {
	if p.src.Buffered() < n {
		if err := p.arm(); err != nil {
			return nil, err
		}
	}
	return p.src.Peek(n)
}

// chunkDiscard consumes n peeked bytes.
func (p *pipe) chunkDiscard(n int) { p.src.Discard(n) }

// copyChunked moves one chunked body, checking its framing as it goes; mode says what of it
// is sent. Trailer fields that may not appear in a trailer are dropped; a trailer section of
// more than maxBytes bytes or maxFields fields ends the copy with a badChunk error.
func (p *pipe) copyChunked(mode chunkMode, maxBytes, maxFields int) error {
	verbatim := mode != chunkPayload
	d := &p.chunks
	d.reset(p, maxBytes)
	d.maxFields = maxFields
	for {
		size, line, err := d.sizeLine()
		if err != nil {
			return err
		}
		switch {
		case mode == chunkPayload:
		case mode == chunkRelay && validChunkExt(line):
			if err := p.write(line); err != nil {
				return err
			}
		default:
			b := append(strconv.AppendInt(p.num[:0], size, 16), '\r', '\n')
			if err := p.write(b); err != nil {
				return err
			}
		}
		if size == 0 {
			break
		}
		if err := p.copyN(size); err != nil {
			return err
		}
		if err := d.dataEnd(); err != nil {
			return err
		}
		if verbatim {
			if err := p.write(crlf); err != nil {
				return err
			}
		}
	}
	for {
		line, last, drop, err := d.trailerLine()
		if err != nil {
			return err
		}
		if verbatim && !drop {
			if err := p.write(line); err != nil {
				return err
			}
		}
		if last {
			return nil
		}
	}
}
