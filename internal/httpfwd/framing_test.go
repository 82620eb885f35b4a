package httpfwd

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

// readRawChunked reads a chunked body from br as it is on the wire, trailers included.
func readRawChunked(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		digits := strings.TrimRight(line, "\r\n")
		if i := strings.IndexAny(digits, "; \t"); i >= 0 {
			digits = digits[:i]
		}
		size, err := strconv.ParseInt(digits, 16, 64)
		if err != nil {
			return sb.String(), err
		}
		if size == 0 {
			break
		}
		data := make([]byte, size+2)
		if _, err := io.ReadFull(br, data); err != nil {
			return sb.String(), err
		}
		sb.Write(data)
	}
	for {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil || line == "\r\n" {
			return sb.String(), err
		}
	}
}

// framingBackend answers each request with its head and chunked body as received, in a body
// of Content-Length.
func framingBackend(t *testing.T) *rawBackend {
	return startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		for {
			head, err := readRawHead(br)
			if err != nil {
				return
			}
			body := ""
			if strings.Contains(strings.ToLower(head), "transfer-encoding") {
				if body, err = readRawChunked(br); err != nil {
					return
				}
			}
			seen := head + body
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(seen))+"\r\n\r\n"+seen)
		}
	})
}

func TestRequestFramingIsCanonical(t *testing.T) {
	t.Parallel()
	addr := startProxy(t, &Server{Router: staticRouter(framingBackend(t).addr())})
	tests := []struct {
		name, te, body, want string
	}{
		{name: "sends chunked in lower case however the client spelt it",
			te: "transfer-encoding:   CHUNKED  ", body: "5\r\nhello\r\n0\r\n\r\n", want: "5\r\nhello\r\n0\r\n\r\n"},
		{name: "strips chunk extensions",
			te: "Transfer-Encoding: chunked", body: "5;a=b;c=\"d e\"\r\nhello\r\n6 ;x\r\n world\r\n0;last\r\n\r\n",
			want: "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
		{name: "strips an extension with an unterminated quoted string",
			te: "Transfer-Encoding: chunked", body: "5;a=\"x\r\nhello\r\n0\r\n\r\n", want: "5\r\nhello\r\n0\r\n\r\n"},
		{name: "sends chunk sizes without leading zeros",
			te: "Transfer-Encoding: chunked", body: "0005\r\nhello\r\n000\r\n\r\n", want: "5\r\nhello\r\n0\r\n\r\n"},
		{name: "keeps trailers",
			te: "Transfer-Encoding: chunked", body: "5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n", want: "5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			resp := c.roundTrip("POST / HTTP/1.1\r\nHost: a\r\n" + tt.te + "\r\n\r\n" + tt.body)
			head, body, ok := strings.Cut(resp.body, "\r\n\r\n")
			if resp.StatusCode != 200 || !ok {
				t.Fatalf("got %d %q", resp.StatusCode, resp.body)
			}
			if n := strings.Count(strings.ToLower(head), "transfer-encoding"); n != 1 || !strings.Contains(head, "\r\nTransfer-Encoding: chunked\r\n") {
				t.Errorf("upstream got head %q, want one Transfer-Encoding: chunked", head)
			}
			if body != tt.want {
				t.Errorf("upstream got body %q, want %q", body, tt.want)
			}
		})
	}
}

func TestResponseFramingIsCanonical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, te, body   string
		wantTE, wantBody string
	}{
		{name: "sends one chunked field for codings split over fields",
			te: "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked", body: "2\r\nhi\r\n0\r\n\r\n",
			wantTE: "Transfer-Encoding: gzip, chunked", wantBody: "2\r\nhi\r\n0\r\n\r\n"},
		{name: "drops parameters of the codings",
			te: "Transfer-Encoding: chunked;x=1", body: "2\r\nhi\r\n0\r\n\r\n",
			wantTE: "Transfer-Encoding: chunked", wantBody: "2\r\nhi\r\n0\r\n\r\n"},
		{name: "keeps valid chunk extensions but drops malformed ones",
			te: "Transfer-Encoding: chunked", body: "2;a=\"x y\"\r\nhi\r\n2;a=\"x\r\nhi\r\n2;=\r\nhi\r\n0\r\n\r\n",
			wantTE: "Transfer-Encoding: chunked", wantBody: "2;a=\"x y\"\r\nhi\r\n2\r\nhi\r\n2\r\nhi\r\n0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
				for {
					if _, err := readRawRequest(br); err != nil {
						return
					}
					io.WriteString(nc, "HTTP/1.1 200 OK\r\n"+tt.te+"\r\n\r\n"+tt.body)
				}
			})
			c := dial(t, startProxy(t, &Server{Router: staticRouter(be.addr())}))
			c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			head, err := readRawHead(c.br)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(strings.ToLower(head), "transfer-encoding"); n != 1 || !strings.Contains(head, "\r\n"+tt.wantTE+"\r\n") {
				t.Errorf("head %q, want one %q", head, tt.wantTE)
			}
			if body, err := readRawChunked(c.br); err != nil || body != tt.wantBody {
				t.Errorf("body %q (%v), want %q", body, err, tt.wantBody)
			}
		})
	}
}
