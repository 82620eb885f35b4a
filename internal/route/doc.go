// Package route compiles the VirtualServices that bind one proxy into per-(gateway, port, host)
// tables, once per registry snapshot, and matches requests and connections against them without
// allocating.
//
// The contract shared with the proxy, gateway and scope code:
//
//   - Build(snap, Proxy) makes an immutable *Table. A Proxy with no Gateways is a sidecar and uses
//     the VirtualServices bound to "mesh" (the default when a VirtualService names no gateways); a
//     gateway proxy lists the gateways it serves as "ns/name" and uses those bound to each.
//     Proxy.Import, when set, narrows what is imported as a Sidecar's egress hosts do.
//   - Table.HTTP(*Request) returns the http route that matched, nil when no VirtualService binds
//     the request's host on its port (the host's own service then applies), or a route whose
//     NotFound is set when a VirtualService binds the host but none of its rules match (Envoy
//     answers 404 with the NR flag). Request.Host must be normalized (registry.NormalizeHost).
//   - Table.TLS and Table.TCP do the same for tls and tcp routes, returning nil when nothing binds.
//   - Table.ExplainHTTP says which rule matched and why each earlier one did not.
//   - HTTPRoute.Pick and L4Route.Pick choose a weighted destination from a caller's number.
//
// Istio's decisions reproduced here (pilot/pkg/networking/core/route and httproute.go):
//
//   - Short names, in hosts and destinations, complete against the VirtualService's namespace
//     (name → name.ns.svc.cluster.local); a VirtualService is seen where its exportTo says.
//   - At a sidecar, per port: a VirtualService takes the services on that port whose host it names
//     exactly, and through a wildcard host those it is the most specific VirtualService host for;
//     its hosts that name no service bind on port 80 only, and on other ports it needs a service.
//     Several VirtualServices for one domain: the oldest wins (creationTimestamp, then load order).
//     Requests find their domain as Envoy does: exact, then the longest wildcard.
//   - At a gateway: the hosts both a server (ns/host) and the VirtualService name, on each port
//     of the Gateway's HTTP servers; several VirtualServices for one host are concatenated, oldest
//     first. A bare gateway name with no Gateway in the VirtualService's namespace binds the served
//     gateway of that name (Istio binds nothing; validate warns).
//   - Match blocks whose gateways (or, without gateways, sourceLabels) exclude this proxy are
//     dropped when the table is built, as sourceMatchHTTP does; tls and tcp blocks need both. A
//     VirtualService with no rule left for a port gives no virtual host there.
//   - Regexes are RE2 matched against the whole value; regex "*" on a header or query parameter
//     means present; withoutHeaders with a value treats a missing header as empty.
//   - Clusters are outbound|PORT|SUBSET|HOST. A destination without a port takes the listener's
//     port at a sidecar's http routes (Istio looks services up on that port only) and elsewhere the
//     service's only port, else the listener's.
//   - A rule that sets no retries gets Istio's default: 2 attempts on connect-failure,
//     refused-stream, unavailable, cancelled and retriable-status-codes (503). No default timeout.
package route
