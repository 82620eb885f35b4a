package httpfwd

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
)

func startExampleBackend() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", r.Host)
	}))
}

// A forward proxy for HTTP_PROXY clients that knows one host and refuses the others.
func ExampleServer() {
	backend := startExampleBackend()
	defer backend.Close()
	srv := &Server{Router: RouterFunc(func(req *RequestHead, attempt int) (Upstream, *Reject) {
		if req.Host != "hello.test" {
			return Upstream{}, &Reject{Status: 502, Reason: fmt.Sprintf("no ServiceEntry declares host %q", req.Host)}
		}
		return Upstream{Addr: backend.Listener.Addr().String()}, nil
	})}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()

	proxy, _ := url.Parse("http://" + ln.Addr().String())
	transport := &http.Transport{Proxy: http.ProxyURL(proxy)}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	for _, u := range []string{"http://hello.test/", "http://other.test/"} {
		resp, err := client.Get(u)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s %s\n", resp.StatusCode, resp.Header.Get("X-Meshentry-Reason"), strings.TrimSpace(string(body)))
	}
	// Output:
	// 200  hello from hello.test
	// 502 no ServiceEntry declares host "other.test"
}
