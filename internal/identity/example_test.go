package identity_test

import (
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/identity/ca"
)

// Example shows the whole path: a local CA, two workload identities in Istio's file layout, and a
// mutual TLS connection on loopback in which the client insists on the server's SPIFFE ID.
func Example() {
	tmp, err := os.MkdirTemp("", "identity-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	root, err := ca.Init(filepath.Join(tmp, "ca"), ca.InitOptions{TrustDomain: "cluster.local"})
	if err != nil {
		log.Fatal(err)
	}
	load := func(sa string) *identity.Source {
		is, err := root.Issue(ca.IssueOptions{Namespace: "shop", ServiceAccount: sa})
		if err != nil {
			log.Fatal(err)
		}
		dir := filepath.Join(tmp, sa)
		if err := is.Write(dir); err != nil {
			log.Fatal(err)
		}
		src, err := identity.NewSource(identity.Options{Dir: dir})
		if err != nil {
			log.Fatal(err)
		}
		return src
	}
	server, client := load("payments"), load("cart")

	ln, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err != nil {
				seen <- err.Error()
			} else {
				id, _ := identity.PeerID(tc.ConnectionState())
				seen <- id.String()
			}
			tc.Close()
		}
	}()
	dialer := &net.Dialer{Timeout: 5 * time.Second} // bounds the handshake too

	want := spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/payments")
	conn, err := tls.DialWithDialer(dialer, "tcp", ln.Addr().String(), client.ClientConfig(want))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println("server sees", <-seen)

	// A client that expects another identity refuses the server and says why.
	other := spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/orders")
	_, err = tls.DialWithDialer(dialer, "tcp", ln.Addr().String(), client.ClientConfig(other))
	fmt.Println(err)
	<-seen // the server's side of the refused handshake
	// Output:
	// server sees spiffe://cluster.local/ns/shop/sa/cart
	// peer presented spiffe://cluster.local/ns/shop/sa/payments, expected spiffe://cluster.local/ns/shop/sa/orders: identity not allowed
}
