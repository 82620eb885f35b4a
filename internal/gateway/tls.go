package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/identity"
)

// alpn is what a terminating server offers: "http/1.1" first, so a client that can do either
// gets the protocol every upstream speaks, then "h2", then the names Istio's sidecars offer on
// mutual TLS (crypto/tls refuses a handshake with no name in common, where Envoy negotiates none).
var alpn = []string{"http/1.1", "h2", "istio-peer-exchange", "istio", "istio-http/1.1", "istio-http/1.0", "istio-h2"}

// serverTLS makes the TLS config a terminating server presents. Credentials are looked up per
// handshake, so a reloaded folder serves the next connection; ISTIO_MUTUAL presents the proxy's
// own identity and accepts any client of its trust domain, as Istio's gateways do.
func serverTLS(s *Server, creds *Credentials, id *identity.Source) (*tls.Config, error) {
	st := s.TLS
	minV, maxV, err := versions(st)
	if err != nil {
		return nil, err
	}
	if st.GetMode() == networking.ServerTLSSettings_ISTIO_MUTUAL {
		if id == nil {
			return nil, errors.New("tls mode ISTIO_MUTUAL needs the proxy's identity (--identity-dir)")
		}
		cfg := id.ServerConfig()
		cfg.NextProtos, cfg.MinVersion, cfg.MaxVersion = alpn, minV, maxV
		return cfg, nil
	}
	cur, err := credentialOf(st, creds)
	if err != nil {
		return nil, err
	}
	mutual := st.GetMode() == networking.ServerTLSSettings_MUTUAL
	if mutual && cur.Load().Roots == nil {
		return nil, fmt.Errorf("tls mode MUTUAL needs CA certificates (%s in the credential folder, or caCertificates)", CAFile)
	}
	sans := slices.Clone(st.GetSubjectAltNames())
	base := &tls.Config{MinVersion: minV, MaxVersion: maxV, NextProtos: alpn}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := cur.Load()
		cfg := &tls.Config{MinVersion: minV, MaxVersion: maxV, NextProtos: alpn, Certificates: []tls.Certificate{*c.Cert}}
		if mutual {
			cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, c.Roots
			if len(sans) > 0 {
				cfg.VerifyConnection = func(cs tls.ConnectionState) error { return checkSANs(cs, sans) }
			}
		}
		return cfg, nil
	}
	return base, nil
}

// credentialOf returns the server's credential: its credentialName folder, or the files it
// names (read once; only folders are followed).
func credentialOf(st *networking.ServerTLSSettings, creds *Credentials) (*atomic.Pointer[Credential], error) {
	if name := st.GetCredentialName(); name != "" {
		return creds.Get(name)
	}
	if st.GetServerCertificate() == "" || st.GetPrivateKey() == "" {
		return nil, fmt.Errorf("tls mode %s needs credentialName, or serverCertificate and privateKey", st.GetMode())
	}
	cred, err := readFiles(st.GetServerCertificate(), st.GetPrivateKey(), st.GetCaCertificates())
	if err != nil {
		return nil, err
	}
	p := new(atomic.Pointer[Credential])
	p.Store(cred)
	return p, nil
}

// versions maps minProtocolVersion and maxProtocolVersion to crypto/tls's; TLS 1.2 is the
// floor by default, as Envoy's server default.
func versions(st *networking.ServerTLSSettings) (minV, maxV uint16, err error) {
	m := map[networking.ServerTLSSettings_TLSProtocol]uint16{
		networking.ServerTLSSettings_TLS_AUTO: 0, networking.ServerTLSSettings_TLSV1_0: tls.VersionTLS10,
		networking.ServerTLSSettings_TLSV1_1: tls.VersionTLS11, networking.ServerTLSSettings_TLSV1_2: tls.VersionTLS12,
		networking.ServerTLSSettings_TLSV1_3: tls.VersionTLS13,
	}
	minV, ok1 := m[st.GetMinProtocolVersion()]
	maxV, ok2 := m[st.GetMaxProtocolVersion()]
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("unknown TLS protocol version %v or %v", st.GetMinProtocolVersion(), st.GetMaxProtocolVersion())
	}
	if minV == 0 {
		minV = tls.VersionTLS12
	}
	return minV, maxV, nil
}

// checkSANs accepts a client whose leaf certificate carries one of sans as a URI or DNS name.
func checkSANs(cs tls.ConnectionState, sans []string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("client presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if slices.ContainsFunc(leafNames(leaf), func(n string) bool { return slices.Contains(sans, n) }) {
		return nil
	}
	return fmt.Errorf("client certificate names %v, none of subjectAltNames %v", leafNames(leaf), sans)
}

func leafNames(c *x509.Certificate) []string {
	names := slices.Clone(c.DNSNames)
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	return names
}
