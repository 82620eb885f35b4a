package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"github.com/meshentry/meshentry/internal/testutil/pki"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshentry/meshentry/internal/identity/ca"
)

// mtlsCase is one handshake between a client and a server config, and who must refuse whom.
type mtlsCase struct {
	name string
	// server returns the server's TLS config; nil means a Source on serverDir accepting any member.
	server func(t *testing.T) *tls.Config
	// client returns the client's TLS config.
	client func(t *testing.T) *tls.Config
	// clientRefuses names the cause the client's PeerError must carry, when the client refuses.
	clientRefuses string
	// serverRefuses names the cause the server's PeerError must carry, when the server refuses.
	serverRefuses string
	// presented is the ID the refusing side must say it was shown.
	presented string
	// expected is how the refusing side must describe what it wanted.
	expected string
}

var (
	serverID = spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/payments")
	cartID   = spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/cart")
	ordersID = spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/orders")
)

// mtlsCases builds the cases of TestMutualTLSAcceptsOnlyTheExpectedPeers around CAs made for the
// test: serverDir is the default server's identity, clientDir the default client's.
func mtlsCases(clientDir, serverDir string, mesh, stranger, otherDomain *ca.CA) []mtlsCase {
	return []mtlsCase{
		{
			name:   "a client expecting the server's ID completes mutual TLS",
			client: func(t *testing.T) *tls.Config { return source(t, clientDir).ClientConfig(serverID) },
		},
		{
			name:   "a client with no ID list accepts any server of its trust domain",
			client: func(t *testing.T) *tls.Config { return source(t, clientDir).ClientConfig() },
		},
		{
			name: "a client trusts a server issued by an intermediate of the same root",
			server: func(t *testing.T) *tls.Config {
				inter, err := ca.Init(t.TempDir(), ca.InitOptions{Parent: mesh, TTL: 48 * time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				return source(t, pki.Issue(t, inter, "", "shop", "payments", ca.IssueOptions{})).ServerConfig()
			},
			client: func(t *testing.T) *tls.Config { return source(t, clientDir).ClientConfig(serverID) },
		},
		{
			name:          "a client expecting another ID refuses the server and names both",
			client:        func(t *testing.T) *tls.Config { return source(t, clientDir).ClientConfig(ordersID) },
			clientRefuses: ErrIDNotAllowed.Error(),
			presented:     serverID.String(),
			expected:      ordersID.String(),
		},
		{
			name: "a client refuses a server whose certificate is from another CA",
			server: func(t *testing.T) *tls.Config {
				return source(t, pki.Issue(t, stranger, "", "shop", "payments", ca.IssueOptions{})).ServerConfig()
			},
			client:        func(t *testing.T) *tls.Config { return source(t, clientDir).ClientConfig(serverID) },
			clientRefuses: "unknown authority",
			presented:     serverID.String(),
			expected:      serverID.String(),
		},
		{
			name: "a client refuses a server of another trust domain",
			server: func(t *testing.T) *tls.Config {
				return source(t, pki.Issue(t, otherDomain, "", "shop", "payments", ca.IssueOptions{})).ServerConfig()
			},
			client:        func(t *testing.T) *tls.Config { return source(t, clientDir).ClientConfig() },
			clientRefuses: "no X.509 bundle",
			presented:     "spiffe://other.example/ns/shop/sa/payments",
			expected:      "any identity in trust domain cluster.local",
		},
		{
			name: "a client refuses a server whose certificate has expired",
			server: func(t *testing.T) *tls.Config {
				expired := pki.Issue(t, mesh, "", "shop", "payments", ca.IssueOptions{TTL: time.Hour, Now: time.Now().Add(-3 * time.Hour)})
				return &tls.Config{Certificates: []tls.Certificate{rawCert(t, expired)}}
			},
			client:        func(t *testing.T) *tls.Config { return source(t, clientDir).ClientConfig(serverID) },
			clientRefuses: "expired",
			presented:     serverID.String(),
			expected:      serverID.String(),
		},
		{
			name: "a server refuses a client whose certificate is from another CA",
			client: func(t *testing.T) *tls.Config {
				return peerConfig(t, pki.Issue(t, stranger, "", "shop", "cart", ca.IssueOptions{}))
			},
			serverRefuses: "unknown authority",
			presented:     cartID.String(),
			expected:      "any identity in trust domain cluster.local",
		},
		{
			name: "a server refuses a client whose certificate has expired",
			client: func(t *testing.T) *tls.Config {
				return peerConfig(t, pki.Issue(t, mesh, "", "shop", "cart", ca.IssueOptions{TTL: time.Hour, Now: time.Now().Add(-3 * time.Hour)}))
			},
			serverRefuses: "expired",
			presented:     cartID.String(),
			expected:      "any identity in trust domain cluster.local",
		},
		{
			name:          "a server refuses a client that presents no certificate",
			client:        func(t *testing.T) *tls.Config { return &tls.Config{InsecureSkipVerify: true} },
			serverRefuses: "certificate",
		},
		{
			name:          "a server with an ID list refuses a client outside it",
			server:        func(t *testing.T) *tls.Config { return source(t, serverDir).ServerConfig(ordersID) },
			client:        func(t *testing.T) *tls.Config { return source(t, clientDir).ClientConfig(serverID) },
			serverRefuses: ErrIDNotAllowed.Error(),
			presented:     cartID.String(),
			expected:      ordersID.String(),
		},
	}
}

// TestMutualTLSAcceptsOnlyTheExpectedPeers runs real handshakes on loopback between a client and a
// server, each with an identity from a CA the test creates, and checks who refuses whom and why.
func TestMutualTLSAcceptsOnlyTheExpectedPeers(t *testing.T) {
	t.Parallel()
	mesh := pki.NewCA(t, "cluster.local")
	clientDir := pki.Issue(t, mesh, "", "shop", "cart", ca.IssueOptions{})
	serverDir := pki.Issue(t, mesh, "", "shop", "payments", ca.IssueOptions{})
	tests := mtlsCases(clientDir, serverDir, mesh, pki.NewCA(t, "cluster.local"), pki.NewCA(t, "other.example"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var scfg *tls.Config
			if tt.server != nil {
				scfg = tt.server(t)
			} else {
				scfg = source(t, serverDir).ServerConfig()
			}
			addr, results := tlsServer(t, scfg)
			conn, err := dial(t, addr, tt.client(t))
			if tt.clientRefuses != "" {
				checkPeerError(t, "client", err, tt.clientRefuses, tt.presented, tt.expected)
				return
			}
			if err == nil {
				err = echo(conn, "ping")
			}
			res := <-results
			if tt.serverRefuses != "" {
				if err == nil {
					t.Fatal("the client's connection worked although the server should refuse it")
				}
				if tt.presented == "" {
					if res.err == nil || !strings.Contains(res.err.Error(), tt.serverRefuses) {
						t.Fatalf("server error %v, want one containing %q", res.err, tt.serverRefuses)
					}
					return
				}
				checkPeerError(t, "server", res.err, tt.serverRefuses, tt.presented, tt.expected)
				return
			}
			if err != nil || res.err != nil {
				t.Fatalf("client error %v, server error %v", err, res.err)
			}
			if got, err := PeerID(res.state); err != nil || got != cartID {
				t.Fatalf("server saw peer %v (%v), want %s", got, err, cartID)
			}
			if got, err := PeerID(conn.ConnectionState()); err != nil || got != serverID {
				t.Fatalf("client saw peer %v (%v), want %s", got, err, serverID)
			}
		})
	}
}

// checkPeerError asserts err is a *PeerError with the given cause and identities, and that its
// message says both identities (the proxy puts the message in a reason header).
func checkPeerError(t *testing.T, side string, err error, cause, presented, expected string) {
	t.Helper()
	var pe *PeerError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: got %v, want a *PeerError", side, err)
	}
	if !strings.Contains(pe.Err.Error(), cause) {
		t.Errorf("%s: cause %q, want it to contain %q", side, pe.Err, cause)
	}
	if pe.Presented != presented || pe.ExpectedString() != expected {
		t.Errorf("%s: presented %q expected %q, want %q and %q", side, pe.Presented, pe.ExpectedString(), presented, expected)
	}
	msg := err.Error()
	if !strings.Contains(msg, presented) || !strings.Contains(msg, expected) {
		t.Errorf("%s: message %q does not name both %q and %q", side, msg, presented, expected)
	}
}

// peerConfig is a client that presents the certificate in dir as it is and trusts any server, so
// the test sees the server's verdict alone.
func peerConfig(t *testing.T, dir string) *tls.Config {
	cert := rawCert(t, dir)
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true,
		// InsecureSkipVerify alone would be flagged as skipping all checks; the server is not under
		// test here, so accept it explicitly.
		VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error { return nil },
	}
}
