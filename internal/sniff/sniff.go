// Package sniff tells TLS, HTTP/1.x, HTTP/2 and other TCP apart from the first bytes a client sends on
// a captured connection, and finds the name the client wants (SNI or Host) without consuming the bytes.
package sniff

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Kind is the protocol a connection was sniffed as.
type Kind uint8

const (
	// TCP is anything not recognised, including server-first protocols whose client sent nothing.
	TCP Kind = iota
	// TLS is a connection that opened with a well-formed ClientHello.
	TLS
	// HTTP is a connection that opened with an HTTP/1.x request line.
	HTTP
	// HTTP2 is a connection that opened with the HTTP/2 prior-knowledge preface; its host is in HPACK
	// and is not sniffed.
	HTTP2
)

// String returns the lowercase name of the kind, as used in logs and metrics labels.
func (k Kind) String() string {
	switch k {
	case TCP:
		return "tcp"
	case TLS:
		return "tls"
	case HTTP:
		return "http"
	case HTTP2:
		return "http2"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Result is what Sniff learned from the first bytes of a connection.
type Result struct {
	// Kind is the detected protocol.
	Kind Kind
	// SNI is the lowercased TLS server name; empty unless Kind is TLS and the client sent one.
	SNI string
	// ALPN is the list of protocols offered in the ClientHello; nil unless Kind is TLS.
	ALPN []string
	// Host is the HTTP/1.x request's host, port stripped and lowercased; empty unless Kind is HTTP and
	// the request named a valid host.
	Host string
	// Prefix holds the bytes read while sniffing; they must reach the upstream before anything else,
	// which reading from Conn does. It is shared with Conn, so it must not be modified.
	Prefix []byte

	conn *PrefixConn
}

// Conn returns the sniffed connection wrapped so that reads replay Prefix first.
func (r Result) Conn() *PrefixConn { return r.conn }

// initialPeek is the first read buffer: enough for a typical ClientHello or request head, so most
// connections need one read and one allocation.
const initialPeek = 4 << 10

// Sniff reads the first bytes of conn, at most max of them and for at most timeout, until it can tell
// the protocol, and returns what it found together with a wrapper (Result.Conn) that replays them.
//
// A client that sends nothing before timeout is taken to speak a server-first protocol (MySQL, SMTP)
// and yields Kind TCP with an empty Prefix, so timeout bounds the delay such clients see. A ClientHello
// or request head cut short by max, timeout or EOF yields the best answer from what arrived. Sniff
// clears conn's read deadline when it returns. A read error other than a timeout or EOF is returned
// along with the Result, whose Conn the caller still has to close.
func Sniff(conn net.Conn, timeout time.Duration, max int) (Result, error) {
	r := Result{Kind: TCP, conn: &PrefixConn{Conn: conn}}
	if timeout <= 0 || max <= 0 {
		return r, fmt.Errorf("sniff: timeout %v and max %d must be positive", timeout, max)
	}
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return r, fmt.Errorf("sniff: set read deadline: %w", err)
	}
	buf := make([]byte, 0, min(max, initialPeek))
	var readErr error
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= max {
				break
			}
			grown := make([]byte, len(buf), min(max, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			if _, done := classify(buf); done {
				break
			}
		}
		if err != nil {
			// A timeout or EOF only ends the peek: what arrived is classified and replayed, and a
			// half-closed client still gets its bytes delivered.
			if !isTimeout(err) && !errors.Is(err, io.EOF) {
				readErr = fmt.Errorf("sniff: read: %w", err)
			}
			break
		}
	}
	r, _ = classify(buf)
	r.conn = &PrefixConn{Conn: conn}
	if len(buf) > 0 {
		r.Prefix = buf
		r.conn.prefix = buf
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil && readErr == nil {
		readErr = fmt.Errorf("sniff: clear read deadline: %w", err)
	}
	return r, readErr
}

// classify returns the best Result for b and whether more bytes could change it.
func classify(b []byte) (Result, bool) {
	if len(b) == 0 {
		return Result{Kind: TCP}, false
	}
	if b[0] == recordTypeHandshake {
		h, err := ParseClientHello(b)
		switch {
		case err == nil:
			return Result{Kind: TLS, SNI: h.ServerName, ALPN: h.ALPN}, true
		case errors.Is(err, ErrNeedMore):
			return Result{Kind: TCP}, false
		default:
			// Istio's tls_inspector does the same: what does not parse as a ClientHello is plain TCP.
			return Result{Kind: TCP}, true
		}
	}
	kind, host, done := sniffHTTP(b)
	return Result{Kind: kind, Host: host}, done
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
