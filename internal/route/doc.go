// Package route compiles the VirtualServices that bind one proxy into per-(gateway, port, host)
// tables, once per registry snapshot, and matches requests and connections against them without
// allocating.
//
// The contract shared with the proxy, gateway and scope code:
//
//   - Build(snap, Proxy) makes an immutable *Table. A Proxy with no Gateways is a sidecar and uses
//     the VirtualServices bound to "mesh" (the default when a VirtualService names no gateways); a
//     gateway proxy lists the gateways it serves as "ns/name" and uses those bound to each.
//   - Table.HTTP(*Request) returns the http route that matched, nil when no VirtualService binds
//     the request's host on its port (the host's own service then applies), or a route whose
//     NotFound is set when a VirtualService binds the host but none of its rules match (Envoy
//     answers 404 with the NR flag).
//   - Table.TLS and Table.TCP do the same for tls and tcp routes, returning nil when nothing binds.
//   - Table.ExplainHTTP says which rule matched and why each earlier one did not.
//
// Istio's decisions reproduced here: VirtualService and destination hosts given as short names are
// resolved against the VirtualService's namespace (name → name.ns.svc.cluster.local); a
// VirtualService is seen by a proxy when its exportTo includes the proxy's namespace; for sidecars,
// when several VirtualServices claim one host the oldest wins (creationTimestamp, then load order),
// while at a gateway their http routes are concatenated oldest first, as Istio merges them; an
// exact host beats a wildcard one, and the longest wildcard beats a shorter one. Match blocks whose
// sourceLabels or gateways exclude this proxy are dropped when the table is built, and a rule left
// with no applicable block never matches. Clusters are named outbound|PORT|SUBSET|HOST; a
// destination without a port takes the service's only port, else the request's port. A VirtualService
// that sets no retries gets Istio's default policy (2 attempts on connect-failure, refused-stream,
// unavailable, cancelled and retriable-status-codes 503).
package route
