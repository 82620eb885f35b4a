package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/identity/ca"
	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/telemetry"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const (
	// tlsModeLabel is the endpoint label Istio's auto mTLS reads: "istio" means the endpoint has a
	// sidecar that terminates mutual TLS.
	tlsModeLabel = "security.istio.io/tlsMode"
	// tlsKeyMark ends the pool key of a TLS upstream, so plaintext and TLS connections to one
	// address never share a pool; splitKey drops it to find the health keys.
	tlsKeyMark = "+tls"
	// sessionCacheSize bounds the TLS sessions kept per route for resumption (SIMPLE and MUTUAL);
	// the LRU evicts the oldest beyond it.
	sessionCacheSize = 64
)

// istioALPN is what Istio's sidecars offer on mutual TLS to another sidecar, istioALPNH2 the
// same for an HTTP/2 port; h2ALPN is what SIMPLE and MUTUAL offer on an HTTP/2 port, whose server
// would otherwise take the connection for HTTP/1.1.
var (
	istioALPN   = []string{"istio-peer-exchange", "istio"}
	istioALPNH2 = []string{"istio-peer-exchange", "istio-h2", "istio", "h2"}
	h2ALPN      = []string{"h2"}
)

// speaksH2 reports whether the proxy speaks HTTP/2 to the port's endpoints (HTTP2 and GRPC ports).
func speaksH2(port *registry.Port) bool {
	switch strings.ToUpper(port.Protocol) {
	case "HTTP2", "GRPC":
		return true
	}
	return false
}

// originTLS is how a route's connections to some endpoints are secured, built once per snapshot.
type originTLS struct {
	// mode is SIMPLE, MUTUAL or ISTIO_MUTUAL, for logs and reasons.
	mode string
	cfg  *tls.Config
	// err is why this TLS cannot be used (a file that cannot be read, no identity for
	// ISTIO_MUTUAL); the route then refuses rather than fall back to plaintext.
	err error
}

// routeTLS is the TLS of one route: explicit from a DestinationRule for every endpoint, or auto
// mTLS for the endpoints labelled for it.
type routeTLS struct {
	explicit *originTLS
	auto     *originTLS
}

// forEndpoint returns the TLS for an endpoint of the route, nil for plaintext.
func (rt routeTLS) forEndpoint(ep *registry.Endpoint) *originTLS {
	if rt.explicit != nil {
		return rt.explicit
	}
	if rt.auto != nil && ep.Labels[tlsModeLabel] == "istio" {
		return rt.auto
	}
	return nil
}

// refusal is why the route cannot be used at all, nil when it can.
func (rt routeTLS) refusal() error {
	if rt.explicit != nil {
		return rt.explicit.err
	}
	return nil
}

// tlsConfigError is a DestinationRule's TLS that cannot be set up; the route refuses with it.
type tlsConfigError struct {
	cluster string
	err     error
}

func (e *tlsConfigError) Error() string {
	return fmt.Sprintf("TLS for %s cannot be set up: %v", e.cluster, e.err)
}

func (e *tlsConfigError) Unwrap() error { return e.err }

// Reason is the x-meshentry-reason of a request the route refuses.
func (e *tlsConfigError) Reason() string { return e.Error() }

// newRouteTLS decides the TLS of a service port under applied (nil when no DestinationRule
// applies): the rule's tls when it sets one, else Istio's auto mTLS for a MESH_INTERNAL service
// when the proxy has an identity. MESH_EXTERNAL services never get mTLS unless a rule asks.
func (p *Proxy) newRouteTLS(svc *registry.Service, port *registry.Port, applied *policy.Applied) routeTLS {
	var s *networking.ClientTLSSettings
	if applied != nil && applied.Traffic != nil {
		s = applied.Traffic.Tls
	}
	if s != nil {
		if s.Mode == networking.ClientTLSSettings_DISABLE {
			return routeTLS{}
		}
		o := p.buildTLS(svc, port, s)
		if o.err != nil {
			src := ""
			if len(applied.Sources) > 0 {
				src = " (DestinationRule " + applied.Sources[0].String() + ")"
			}
			o.err = &tlsConfigError{cluster: port.Cluster + src, err: o.err}
		}
		return routeTLS{explicit: o}
	}
	if svc.MeshInternal && p.cfg.Identity != nil {
		o := p.istioMutual(svc, port, nil, "")
		if o.err == nil {
			return routeTLS{auto: o}
		}
		// The entry's own subjectAltNames are not SPIFFE IDs: auto mTLS cannot check them, so
		// labelled endpoints get the refusal rather than an unchecked peer.
		o.err = &tlsConfigError{cluster: port.Cluster, err: o.err}
		return routeTLS{auto: o}
	}
	return routeTLS{}
}

// buildTLS makes the client TLS a DestinationRule's tls settings ask for, reading its files now.
func (p *Proxy) buildTLS(svc *registry.Service, port *registry.Port, s *networking.ClientTLSSettings) *originTLS {
	switch s.Mode {
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		return p.istioMutual(svc, port, s.SubjectAltNames, s.Sni)
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
	default:
		return &originTLS{err: fmt.Errorf("unknown tls mode %v", s.Mode)}
	}
	o := &originTLS{mode: s.Mode.String()}
	if s.CredentialName != "" && s.ClientCertificate == "" && s.CaCertificates == "" {
		o.err = fmt.Errorf("credentialName %q names a Kubernetes secret, which meshentry cannot read; give the files instead", s.CredentialName)
		return o
	}
	cfg := &tls.Config{
		ServerName:         s.Sni,
		InsecureSkipVerify: true, // verified in VerifyConnection below, to name what the server presented
		ClientSessionCache: tls.NewLRUClientSessionCache(sessionCacheSize),
		CurvePreferences:   []tls.CurveID{tls.X25519}, // OpenSSL 3.0's default, for parity with HAProxy and Envoy
		MinVersion:         tls.VersionTLS12,
	}
	if cfg.ServerName == "" && !svc.Wildcard {
		// Istio's auto SNI: the host the application asked for.
		cfg.ServerName = svc.Host
	}
	if s.Mode == networking.ClientTLSSettings_MUTUAL {
		if s.ClientCertificate == "" || s.PrivateKey == "" {
			o.err = errors.New("mode MUTUAL needs clientCertificate and privateKey")
			return o
		}
		cert, err := tls.LoadX509KeyPair(s.ClientCertificate, s.PrivateKey)
		if err != nil {
			o.err = fmt.Errorf("client certificate %s, key %s: %w", s.ClientCertificate, s.PrivateKey, err)
			return o
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if speaksH2(port) {
		cfg.NextProtos = h2ALPN
	}
	var roots *x509.CertPool // nil: the system roots
	if s.CaCertificates != "" {
		b, err := ca.ReadFile(s.CaCertificates)
		if err != nil {
			o.err = fmt.Errorf("caCertificates: %w", err)
			return o
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(b) {
			o.err = fmt.Errorf("caCertificates %s holds no PEM certificate", s.CaCertificates)
			return o
		}
	}
	if !s.GetInsecureSkipVerify().GetValue() {
		v := serverCheck{roots: roots, sans: slices.Clone(s.SubjectAltNames), name: cfg.ServerName}
		cfg.VerifyConnection = v.verify
	}
	o.cfg = cfg
	return o
}

// istioMutual makes ISTIO_MUTUAL with the proxy's identity: the server must chain to the trust
// bundle and present one of sans (the rule's), else the entry's subjectAltNames, else any identity
// of the trust domain. SNI is sni, else Istio's outbound_.PORT_._.HOST.
func (p *Proxy) istioMutual(svc *registry.Service, port *registry.Port, sans []string, sni string) *originTLS {
	o := &originTLS{mode: "ISTIO_MUTUAL"}
	if p.cfg.Identity == nil {
		o.err = errors.New("mode ISTIO_MUTUAL needs the proxy's identity (meshentry run --identity-dir)")
		return o
	}
	if len(sans) == 0 {
		sans = svc.SubjectAltNames
	}
	ids := make([]spiffeid.ID, 0, len(sans))
	for _, san := range sans {
		id, err := spiffeid.FromString(san)
		if err != nil {
			o.err = fmt.Errorf("subjectAltNames %q is not a SPIFFE ID, which ISTIO_MUTUAL checks: %w", san, err)
			return o
		}
		ids = append(ids, id)
	}
	cfg := p.cfg.Identity.ClientConfig(ids...)
	cfg.ServerName = sni
	if sni == "" {
		cfg.ServerName = "outbound_." + strconv.FormatUint(uint64(port.Number), 10) + "_._." + svc.Host
	}
	cfg.NextProtos = istioALPN
	if speaksH2(port) {
		cfg.NextProtos = istioALPNH2
	}
	cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	// No session cache: a resumed session would carry the client certificate of before a
	// rotation, and the peer must see the identity in use now.
	o.cfg = cfg
	return o
}

// serverCheck verifies a SIMPLE or MUTUAL server: its chain against roots, then its DNS, URI and
// IP SANs against sans when the rule lists them, else its name against the SNI.
type serverCheck struct {
	roots *x509.CertPool
	sans  []string
	name  string
}

func (v serverCheck) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return &serverCertError{expected: v.expected(), err: errors.New("the server presented no certificate")}
	}
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{Roots: v.roots, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if v.name == "" {
		// A wildcard entry: the SNI is the host the application asked for (tls_original.go).
		v.name = cs.ServerName
	}
	if len(v.sans) == 0 {
		opts.DNSName = v.name
	}
	if _, err := leaf.Verify(opts); err != nil {
		return &serverCertError{expected: v.expected(), presented: presentedSANs(leaf), err: err}
	}
	if len(v.sans) > 0 {
		for _, san := range presentedSANList(leaf) {
			if slices.Contains(v.sans, san) {
				return nil
			}
		}
		return &serverCertError{expected: v.expected(), presented: presentedSANs(leaf), err: errors.New("no subjectAltName matches")}
	}
	return nil
}

// expected names what the server must present, for a reason.
func (v serverCheck) expected() string {
	if len(v.sans) > 0 {
		return "one of subjectAltNames " + strings.Join(v.sans, ", ")
	}
	if v.name != "" {
		return "a certificate for " + v.name
	}
	return "a certificate from the trusted CAs"
}

// serverCertError is a SIMPLE or MUTUAL server refused: expected and presented names, and why.
type serverCertError struct {
	expected, presented string
	err                 error
}

func (e *serverCertError) Error() string {
	presented := e.presented
	if presented == "" {
		presented = "no SANs"
	}
	return fmt.Sprintf("server presented %s, expected %s: %v", presented, e.expected, e.err)
}

func (e *serverCertError) Unwrap() error { return e.err }

// presentedSANList lists a certificate's DNS, URI and IP SANs.
func presentedSANList(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// presentedSANs is presentedSANList in one line, e.g. "SANs [a.example, spiffe://td/x]".
func presentedSANs(c *x509.Certificate) string {
	l := presentedSANList(c)
	if len(l) == 0 {
		return "no SANs"
	}
	return "SANs [" + strings.Join(l, ", ") + "]"
}

// handshakeError is a failed upstream TLS handshake: the connection fails, never plaintext.
type handshakeError struct {
	mode, cluster string
	err           error
}

func (e *handshakeError) Error() string {
	return fmt.Sprintf("TLS (%s) handshake with %s failed: %v", e.mode, e.cluster, e.err)
}

func (e *handshakeError) Unwrap() error { return e.err }

// Reason is the x-meshentry-reason the client gets: the cluster, and for a refused peer the
// identities expected and presented (identity.PeerError, serverCertError name both).
func (e *handshakeError) Reason() string { return e.Error() }

// withTLS wraps dial in o's TLS handshake, done within the dial's context (the connect timeout).
// A handshake failure closes the connection, is counted and logged (rate-limited), and returns a
// *handshakeError, which the callers count as a connect failure against the endpoint.
// last, when set, keeps the endpoint's latest handshake failure (cleared by a success), for the
// reason of a request that runs out of endpoints.
func (p *Proxy) withTLS(o *originTLS, cluster string, last *atomic.Pointer[handshakeError], dial func(context.Context) (net.Conn, error)) func(context.Context) (net.Conn, error) {
	if o == nil {
		return dial
	}
	if o.err != nil {
		err := o.err
		return func(context.Context) (net.Conn, error) { return nil, err }
	}
	return func(ctx context.Context) (net.Conn, error) {
		raw, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		return p.handshake(ctx, o, o.cfg, cluster, raw, last)
	}
}

// handshake runs o's TLS handshake with cfg over raw within ctx. A failure closes raw, is counted
// and logged (rate-limited), and comes back as a *handshakeError that callers count as a connect
// failure; last, when set, keeps it for the reason of a request that runs out of endpoints.
func (p *Proxy) handshake(ctx context.Context, o *originTLS, cfg *tls.Config, cluster string, raw net.Conn, last *atomic.Pointer[handshakeError]) (net.Conn, error) {
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		if errors.Is(ctx.Err(), context.Canceled) && !isPeerRefusal(err) {
			// Our side gave up (the client left, a drain): not the endpoint's failure.
			return nil, fmt.Errorf("TLS (%s) handshake with %s: %w", o.mode, cluster, err)
		}
		p.stats.tlsHandshakeFailures.Add(1)
		herr := &handshakeError{mode: o.mode, cluster: cluster, err: err}
		if last != nil {
			last.Store(herr)
		}
		p.sec.refusalLog("upstream TLS handshake failed", "cluster", cluster, "upstream", raw.RemoteAddr().String(), "err", herr)
		return nil, herr
	}
	if last != nil && last.Load() != nil {
		last.Store(nil)
	}
	return tc, nil
}

// isPeerRefusal reports whether a handshake error is the peer's certificate refused by us.
func isPeerRefusal(err error) bool {
	var pe *identity.PeerError
	var se *serverCertError
	return errors.As(err, &pe) || errors.As(err, &se)
}

// poolKey is key, marked when the endpoint's connections are TLS so they pool apart.
func (r *route) poolKey(e *endpoint, key string) string {
	if e.tls != nil {
		return key + tlsKeyMark
	}
	return key
}

// tlsDial wraps a DNS endpoint's dial of one resolved address in the endpoint's TLS.
func (r *route) tlsDial(e *endpoint, dial func(context.Context) (net.Conn, error)) func(context.Context) (net.Conn, error) {
	return r.secure(e.tls, r.port.Cluster, &e.tlsFailed, dial)
}

// tlsRefusal answers a request for a route whose TLS cannot be set up: 503 with the reason, and
// never a plaintext attempt.
func (p *Proxy) tlsRefusal(err error, id []byte) *httpfwd.Reject {
	p.sec.refusalLog("not forwarded", withRequestID(id, "via", "HTTP", "err", err)...)
	reason := err.Error()
	return &httpfwd.Reject{Status: 503, Reason: reason, Body: "meshentry: " + reason + "\n", Flags: telemetry.UpstreamConnectFailure}
}

// noEndpointLeft answers a request every endpoint of r failed for; tried marks the endpoints the
// request tried (RouteState). When one of them failed its TLS handshake the reason says how, so
// the client learns which identities were expected and presented.
func (p *Proxy) noEndpointLeft(r *route, tried uint64) *httpfwd.Reject {
	reason := "no endpoint left to try for " + r.port.Cluster
	var flags telemetry.Flags
	for i := range r.eps {
		if i >= 64 || tried&(1<<i) == 0 {
			continue
		}
		if herr := r.eps[i].tlsFailed.Load(); herr != nil {
			reason += "; " + herr.Reason()
			flags = telemetry.UpstreamConnectFailure
			break
		}
	}
	return &httpfwd.Reject{Status: 503, Reason: reason, Flags: flags,
		Body: "meshentry: every endpoint of " + r.port.Cluster + " failed to connect\n"}
}
