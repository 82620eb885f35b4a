package httpfwd

import (
	"bytes"
	"errors"
	"strconv"
)

// A chunked response on the loop is relayed as copyChunked(chunkRelay) relays it, by the one
// decoder (chunkedReader) over the bytes the loop read so far: a step that lacks bytes says
// errChunkMore and is taken again, from where it began, when more arrived. Size lines with
// well-formed extensions and the trailer fields that may be forwarded go on as received.

// errChunkMore is a step of the chunked decoder that needs bytes not read yet.
var errChunkMore = errors.New("chunked: more bytes needed")

// chunkPhase is where the decoder is in the body.
type chunkPhase uint8

const (
	chunkSize    chunkPhase = iota // a size line is next
	chunkData                      // data bytes are next (chunkLeft of them)
	chunkDataEnd                   // the CRLF after a chunk's data is next
	chunkTrailer                   // trailer lines are next, through the empty one
	chunkEnd                       // the body is over
)

// loopChunks is the state of a chunked body on the loop.
type loopChunks struct {
	d     chunkedReader
	phase chunkPhase
	left  int64
	buf   []byte // bytes read and not yet taken
	// hold keeps the bytes a step lacked more for (a part of a line) across reads: at most
	// a line's, readSize.
	hold []byte
	num  [20]byte
}

// chunkLine is chunkSource's: the next line through its LF, from what was read.
func (ch *loopChunks) chunkLine() ([]byte, error) {
	i := bytes.IndexByte(ch.buf, '\n')
	if i < 0 {
		if len(ch.buf) >= readSize {
			return nil, badChunk("chunk line too long") // as the engine's reader of readSize
		}
		return nil, errChunkMore
	}
	line := ch.buf[:i+1]
	ch.buf = ch.buf[i+1:]
	return line, nil
}

func (ch *loopChunks) chunkPeek(n int) ([]byte, error) {
	if len(ch.buf) < n {
		return nil, errChunkMore
	}
	return ch.buf[:n], nil
}

func (ch *loopChunks) chunkDiscard(n int) { ch.buf = ch.buf[n:] }

func (lc *loopConn) startChunked() {
	if lc.chunks == nil {
		lc.chunks = &loopChunks{}
	}
	ch := lc.chunks
	lim := &lc.ls.s.lim
	ch.d.reset(ch, lim.MaxHeaderBytes)
	ch.d.maxFields = lim.MaxHeaders
	ch.phase, ch.left, ch.buf, ch.hold = chunkSize, 0, nil, ch.hold[:0]
}

func (lc *loopConn) chunksDone() bool { return lc.chunks.phase == chunkEnd }

// takeChunked relays what b completes of the chunked body; false when the body was malformed
// and the exchange cut.
func (lc *loopConn) takeChunked(b []byte) bool {
	ch := lc.chunks
	// The bytes held from the last read come first; b is the loop's scratch, reused by the
	// next read, so what is left of it is copied to hold.
	if len(ch.hold) > 0 {
		ch.hold = append(ch.hold, b...)
		ch.buf = ch.hold
	} else {
		ch.buf = b
	}
	err := lc.stepChunks()
	if errors.Is(err, errChunkMore) {
		ch.hold = append(ch.hold[:0], ch.buf...) // a memmove when buf is hold's tail
		ch.buf = nil
		return true
	}
	ch.hold = ch.hold[:0]
	if err != nil {
		lc.c.countTrailerCap(err)
		lc.c.bw.Flush()
		lc.cut(responseBodyFault(err), nil)
		return false
	}
	if len(ch.buf) > 0 {
		lc.extra = true
	}
	ch.buf = nil
	return true
}

// stepChunks runs the decoder over ch.buf until it ends or lacks bytes.
func (lc *loopConn) stepChunks() error {
	ch, w := lc.chunks, lc.c.bw
	for {
		switch ch.phase {
		case chunkSize:
			size, line, err := ch.d.sizeLine()
			if err != nil {
				return err
			}
			if validChunkExt(line) {
				w.Write(line)
			} else {
				w.Write(append(strconv.AppendInt(ch.num[:0], size, 16), '\r', '\n'))
			}
			ch.phase, ch.left = chunkData, size
			if size == 0 {
				ch.phase = chunkTrailer
			}
		case chunkData:
			if len(ch.buf) == 0 {
				return errChunkMore
			}
			k := int(min(int64(len(ch.buf)), ch.left))
			w.Write(ch.buf[:k])
			lc.c.rec.ResponseBytes += int64(k)
			ch.buf, ch.left = ch.buf[k:], ch.left-int64(k)
			if ch.left == 0 {
				ch.phase = chunkDataEnd
			}
		case chunkDataEnd:
			if err := ch.d.dataEnd(); err != nil {
				return err
			}
			w.Write(crlf)
			ch.phase = chunkSize
		case chunkTrailer:
			line, last, drop, err := ch.d.trailerLine()
			if err != nil {
				return err
			}
			if !drop {
				w.Write(line)
			}
			if last {
				ch.phase = chunkEnd
			}
		case chunkEnd:
			return nil
		}
	}
}
