package httpfwd

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://Example.Test:8080/p?q HTTP/1.1\r\nHost: x\r\nConnection: X-A, close\r\nX-A: 1\r\n\r\n",
	"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
	"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
	"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST /u HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  Chunked \r\n\r\n",
	"GET /a%zz?b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /\xff%41?%zz HTTP/1.1\r\nHost: a\r\nX-O: \xfe\x80\r\n\r\n",
	"GET http://[fe80::1%25eth0]:8080?x HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n",
	"DELETE //x/../y HTTP/1.1\r\nHost: a:1\r\nContent-Length: 000\r\n\r\n",
	"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"OPTIONS http://a.test HTTP/1.1\r\nHost: a\r\n\r\n",
	"CONNECT db.example:443 HTTP/1.1\r\nHost: db.example:443\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: [::1]:80\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\nX-Request-Id: r\n\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
	"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
	"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length, host\r\nContent-Length: 5\r\n\r\n",
	"GET http://[::ffff:127.0.0.1%25.bar.com]/ HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: [fe80::1%eth0]:80\r\n\r\n",
	"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: 127.0.0.1.\r\n\r\n",
}

// FuzzParseRequestHead checks that any input parses without panicking and that an accepted
// head, as forwarded, means the same to our parser and to net/http: a proxy and its upstream
// disagreeing on where a body ends is how requests get smuggled.
func FuzzParseRequestHead(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		raw, err := readHead(bufio.NewReader(bytes.NewReader(in)), nil, 64<<10)
		if err != nil {
			return
		}
		var req RequestHead
		if err := req.parse(raw); err != nil {
			return
		}
		if req.Method == "" || req.Host != strings.ToLower(req.Host) {
			t.Fatalf("accepted head with method %q host %q", req.Method, req.Host)
		}
		// A zone or an escape would let an address pass for a name the registry declares.
		if strings.ContainsAny(req.Host, "%[]@") {
			t.Fatalf("accepted host %q", req.Host)
		}
		if req.has(flagTE) && req.length >= 0 {
			t.Fatal("accepted both Transfer-Encoding and Content-Length")
		}
		if req.Method == "CONNECT" {
			return
		}
		var out bytes.Buffer
		c := &conn{s: &Server{}, ubw: bufio.NewWriter(&out), work: &work{req: req}}
		c.rec.RequestID = []byte("00000000-0000-4000-8000-000000000000")
		c.writeRequestHead(&Upstream{Addr: "upstream.test:80"})
		c.ubw.Flush()

		var again RequestHead
		if err := again.parse(out.Bytes()); err != nil {
			t.Fatalf("forwarded head %q does not parse: %v", out.Bytes(), err)
		}
		if again.length != req.length || again.Chunked() != req.Chunked() {
			t.Fatalf("framing changed: %d/%v became %d/%v", req.length, req.Chunked(), again.length, again.Chunked())
		}
		for _, f := range again.fields {
			if f.kind.hopByHop() && !(req.WantsUpgrade() && (f.kind == kindUpgrade || f.kind == kindConnection)) {
				t.Fatalf("hop-by-hop field forwarded in %q", out.Bytes())
			}
		}
		// Whatever the engine forwards, a strict upstream must take, and frame the same way.
		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(out.Bytes())))
		if err != nil {
			t.Fatalf("forwarded head %q, which net/http refuses: %v", out.Bytes(), err)
		}
		wantLen := req.length
		switch {
		case req.Chunked():
			wantLen = -1
		case wantLen < 0:
			wantLen = 0
		}
		if hr.ContentLength != wantLen || (len(hr.TransferEncoding) > 0) != req.Chunked() {
			t.Fatalf("net/http frames %q as length %d %v, we as %d chunked=%v",
				out.Bytes(), hr.ContentLength, hr.TransferEncoding, wantLen, req.Chunked())
		}
	})
}

var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
	"HTTP/1.1 204\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: X-A\r\nX-A: 1\r\nKeep-Alive: 5\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	"HTTP/1.1 999 X\r\n\r\n",
	"HTTP/1.1 200 OK\nX: y\n\n",
	"HTTP/1.1 200 OK\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
}

// FuzzParseResponseHead checks response heads the same way: no panic, and an accepted head as
// relayed keeps its framing for both our parser and net/http's client.
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, http10 bool) {
		raw, err := readHead(bufio.NewReader(bytes.NewReader(in)), nil, 64<<10)
		if err != nil {
			return
		}
		var resp responseHead
		if err := resp.parse(raw); err != nil {
			return
		}
		if resp.status < 100 || resp.status > 599 {
			t.Fatalf("accepted status %d", resp.status)
		}
		var out bytes.Buffer
		c := &conn{s: &Server{}, bw: bufio.NewWriter(&out), work: &work{resp: resp}}
		c.req.Method, c.req.ProtoMinor = "GET", 1
		if http10 {
			c.req.ProtoMinor = 0
		}
		dechunk := resp.Chunked() && http10
		c.writeResponseHead(true, dechunk)
		c.bw.Flush()
		var again responseHead
		if err := again.parse(out.Bytes()); err != nil {
			t.Fatalf("relayed head %q does not parse: %v", out.Bytes(), err)
		}
		if again.status != resp.status || again.Chunked() != (resp.Chunked() && !dechunk) {
			t.Fatalf("relayed head %q changed status or coding", out.Bytes())
		}
		if !resp.has(flagTE) && again.length != resp.length {
			t.Fatalf("relayed head %q changed Content-Length", out.Bytes())
		}
		if resp.has(flagTE) && again.length >= 0 {
			t.Fatalf("relayed head %q kept Content-Length beside Transfer-Encoding", out.Bytes())
		}
		if resp.status < 200 {
			return
		}
		hr, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out.Bytes())), &http.Request{Method: "GET"})
		if err != nil {
			return
		}
		if chunked := len(hr.TransferEncoding) > 0; chunked != again.Chunked() {
			t.Fatalf("net/http reads %q as chunked=%v", out.Bytes(), chunked)
		}
	})
}

// FuzzChunkedBody feeds arbitrary bytes to the chunked body relay. What it accepts it must pass
// on as the modes promise: requests in canonical framing, which net/http must decode to the
// same payload; responses as received where the extensions are well-formed by the grammar,
// checked here with a regular expression of its own, and canonical where they are not.
func FuzzChunkedBody(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;a=b\r\nhello\r\n6;q=\"x\"\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
		"2\r\nhi\r\n0\r\nContent-Length: 9\r\nX-T: 1\r\nHOST: a\r\n\r\n",
		"0\r\n\r\n",
		"5\nhello\n0\n\n",
		"fffffffffffffffff\r\n",
		"5 \r\nhello\r\n0\r\n\r\n",
		"5;a=\"x\r\nhello\r\n0\r\n\r\n",
		"005 ; a = \"\\\"y\" ;b\r\nhello\r\n0;c \r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var relayed, canonical, payload bytes.Buffer
		rd := bytes.NewReader(in)
		src := bufio.NewReaderSize(rd, 64)
		if err := relayChunked(src, &relayed, chunkRelay); err != nil {
			return
		}
		consumed := in[:len(in)-rd.Len()-src.Buffered()]
		wantRelay, wantCanonical := expectChunked(t, consumed)
		if relayed.String() != wantRelay {
			t.Fatalf("relayed %q of input %q, want %q", relayed.Bytes(), consumed, wantRelay)
		}
		if err := relayChunked(bufio.NewReaderSize(bytes.NewReader(in), 64), &canonical, chunkCanonical); err != nil {
			t.Fatalf("canonical mode refused what relay mode accepted: %v", err)
		}
		if canonical.String() != wantCanonical {
			t.Fatalf("canonical %q of input %q, want %q", canonical.Bytes(), consumed, wantCanonical)
		}
		if err := relayChunked(bufio.NewReaderSize(bytes.NewReader(in), 64), &payload, chunkPayload); err != nil {
			t.Fatalf("payload mode refused what relay mode accepted: %v", err)
		}
		want, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(canonical.Bytes())))
		if err != nil {
			t.Fatalf("net/http refuses the canonical body %q: %v", canonical.Bytes(), err)
		}
		if !bytes.Equal(payload.Bytes(), want) {
			t.Fatalf("payload %q, net/http decodes %q", payload.Bytes(), want)
		}
	})
}

// chunkExtGrammar is RFC 9112 §7.1.1's chunk-size [ chunk-ext ], with obs-text (bytes from
// 0x80) mapped to '(' first, a byte allowed and refused in the same places, so that the
// expression works on ASCII.
var chunkExtGrammar = func() *regexp.Regexp {
	const (
		token  = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+"
		quoted = `"(?:[\t !#-\[\]-~]|\\[\t -~])*"`
	)
	return regexp.MustCompile(`^[0-9a-fA-F]+(?:[ \t]*;[ \t]*` + token + `(?:[ \t]*=[ \t]*(?:` + token + `|` + quoted + `))?)*$`)
}()

// expectChunked walks a chunked body the relay accepted and returns what relay and canonical
// modes must make of it.
func expectChunked(t *testing.T, in []byte) (relay, canonical string) {
	var r, c strings.Builder
	for {
		line, rest, ok := bytes.Cut(in, []byte("\r\n"))
		if !ok {
			t.Fatalf("accepted chunk line without CRLF in %q", in)
		}
		in = rest
		digits := len(line) - len(bytes.TrimLeft(line, "0123456789abcdefABCDEF"))
		size, err := strconv.ParseInt(string(line[:digits]), 16, 64)
		if err != nil {
			t.Fatalf("accepted chunk size %q: %v", line, err)
		}
		ascii := bytes.Map(func(r rune) rune {
			if r >= 0x80 {
				return '('
			}
			return r
		}, line)
		canonicalLine := strconv.FormatInt(size, 16) + "\r\n"
		if chunkExtGrammar.Match(ascii) {
			r.Write(line)
			r.WriteString("\r\n")
		} else {
			r.WriteString(canonicalLine)
		}
		c.WriteString(canonicalLine)
		if size == 0 {
			trailers := keptTrailers(in)
			r.WriteString(trailers)
			c.WriteString(trailers)
			return r.String(), c.String()
		}
		if int64(len(in)) < size+2 {
			t.Fatalf("accepted a short chunk")
		}
		r.Write(in[:size+2])
		c.Write(in[:size+2])
		in = in[size+2:]
	}
}

// keptTrailers returns the trailer section in without the fields a trailer must not carry.
func keptTrailers(in []byte) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(in), "\r\n") {
		name, _, _ := strings.Cut(line, ":")
		if _, drop := trailerForbidden[strings.ToLower(name)]; !drop {
			b.WriteString(line)
		}
	}
	return b.String()
}

// relayChunked runs one chunked body through a pipe into w.
func relayChunked(src *bufio.Reader, w io.Writer, mode chunkMode) error {
	p := &pipe{bufs: &sync.Pool{}}
	p.reset(src, nopConn{}, bufio.NewWriterSize(w, 64), nopConn{}, time.Minute)
	err := p.copyChunked(mode, 1024, 0)
	p.dst.Flush()
	return err
}

// nopConn stands in for the connections of a pipe that works on buffers.
type nopConn struct{ net.Conn }

func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }

func TestValidValueMatchesTheByteRule(t *testing.T) {
	t.Parallel()
	for c := range 256 {
		for pos := range 17 {
			b := bytes.Repeat([]byte("a"), 17)
			b[pos] = byte(c)
			want := !(c < ' ' && c != '\t' || c == 0x7f)
			if got := validValue(b); got != want {
				t.Fatalf("byte %#x at %d: got %v, want %v", c, pos, got, want)
			}
		}
	}
}
