package validate

import "strings"

// Protocol names as Istio's protocol.Parse accepts them (case does not matter). An empty protocol is
// not one of them: it asks for protocol detection, which ServiceEntry ports allow.
const (
	protoHTTP      = "HTTP"
	protoHTTP2     = "HTTP2"
	protoHTTPS     = "HTTPS"
	protoHTTPProxy = "HTTP_PROXY"
	protoGRPC      = "GRPC"
	protoGRPCWeb   = "GRPC-WEB"
	protoTCP       = "TCP"
	protoTLS       = "TLS"
	protoUDP       = "UDP"
	protoMongo     = "MONGO"
	protoMySQL     = "MYSQL"
	protoRedis     = "REDIS"
)

// knownProtocols lists the protocols in the order error messages name them.
var knownProtocols = []string{
	protoHTTP, protoHTTPS, protoGRPC, protoGRPCWeb, protoHTTP2, protoHTTPProxy,
	protoMongo, protoMySQL, protoRedis, protoTCP, protoTLS, protoUDP,
}

// parseProtocol returns the canonical upper-case name of a known protocol, or "" when s is empty or
// unknown.
func parseProtocol(s string) string {
	u := strings.ToUpper(s)
	for _, p := range knownProtocols {
		if u == p {
			return p
		}
	}
	return ""
}

// isHTTPProtocol is Istio's IsHTTP: the ports routed by Host or :authority.
func isHTTPProtocol(p string) bool {
	switch p {
	case protoHTTP, protoHTTP2, protoHTTPProxy, protoGRPC, protoGRPCWeb:
		return true
	}
	return false
}

// isTLSProtocol is Istio's IsTLS: the ports routed by SNI.
func isTLSProtocol(p string) bool { return p == protoHTTPS || p == protoTLS }

// isTCPProtocol is Istio's IsTCP: every protocol carried over TCP that is not plain HTTP.
func isTCPProtocol(p string) bool {
	switch p {
	case protoTCP, protoHTTPS, protoTLS, protoMongo, protoRedis, protoMySQL:
		return true
	}
	return false
}

// isOpaqueTCP reports the ports that carry bytes the proxy cannot route by name: the TCP family
// without SNI, and an unset protocol, whose non-HTTP traffic is treated as TCP.
func isOpaqueTCP(raw string) bool {
	if raw == "" {
		return true
	}
	switch parseProtocol(raw) {
	case protoTCP, protoMongo, protoMySQL, protoRedis:
		return true
	}
	return false
}

// describeProtocol names a port's protocol for messages.
func describeProtocol(raw string) string {
	if raw == "" {
		return "no protocol"
	}
	if p := parseProtocol(raw); p != "" {
		return p
	}
	return raw
}
