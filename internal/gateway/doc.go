// Package gateway runs meshentry as an Istio egress gateway: it selects the Gateways whose
// selector matches the proxy's labels, listens on each of their servers' ports, accepts only the
// hosts a server declares, terminates or passes TLS through as the server's tls mode says, and
// routes with the VirtualServices bound to the Gateway, handing the chosen destination to the
// proxy, which reaches it as a sidecar would (endpoints, DestinationRule, TLS origination).
package gateway
