package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Ports declared HTTP2 or GRPC (in any letter case) are forwarded as cleartext HTTP/2.
func TestHTTP2PortsAreForwardedAsH2C(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%s %s", r.Proto, r.Host)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	tests := []struct {
		name      string
		protocol  string
		wantProto string
	}{
		{name: "sends HTTP2 ports as h2c", protocol: "HTTP2", wantProto: "HTTP/2.0"},
		{name: "sends gRPC ports as h2c whatever their case", protocol: "gRPC", wantProto: "HTTP/2.0"},
		{name: "keeps HTTP ports on HTTP/1.1", protocol: "HTTP", wantProto: "HTTP/1.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: h2}
spec:
  hosts: [h2.example.com]
  ports: [{number: 80, name: web, protocol: `+tc.protocol+`}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {web: `+port+`}}]
`, Config{}, "")
			status, body, _ := get(t, h.client(nil), "http://h2.example.com/")
			if want := tc.wantProto + " h2.example.com"; status != 200 || body != want {
				t.Fatalf("got %d %q, want %q", status, body, want)
			}
		})
	}
}
