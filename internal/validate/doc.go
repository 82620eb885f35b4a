// Package validate decides which documents are good: Document applies the rules of Istio's
// validation webhook and CRD schema to one document, and Analyze looks across accepted documents for
// conflicts that no single one shows, in the spirit of istioctl analyze.
//
// The ServiceEntry rules follow Istio's current ValidateServiceEntry (pkg/config/validation) and the
// CEL and size rules of the ServiceEntry CRD (istio.io/api), written anew here. Istio's own test
// table and CRD fixtures live in testdata/validate/istio-cases, one file per case with Istio's
// verdict, and a test holds us to it. DestinationRules follow Istio's ValidateDestinationRule
// (traffic policies, TLS per mode, load balancer, locality, connection pool, outlier detection,
// port levels, subsets, workloadSelector). VirtualServices follow the route parts of Istio's
// ValidateVirtualService (regexes, string matches, weights, actions, retries, faults, tls and tcp
// matches, unreachable rules); Gateway and Sidecar get the cheap, certain checks (hosts present and
// well-formed, names, exportTo).
//
// Every finding names its field in the document's own spelling ("spec.endpoints[0].ports.https")
// and the line that field is on. Findings are errors (the document is rejected) or warnings (it is
// kept). Where meshentry deliberately differs from Istio:
//
//   - STATIC resolution with neither endpoints nor workloadSelector is a warning (ME1024); Istio
//     accepts it silently, though the service then has nothing to connect to.
//   - A ServiceEntry without ports is a warning (ME1019): meshentry matches traffic by port, so the
//     entry receives none. Istio accepts it (there it can still decorate a Kubernetes Service).
//   - An empty subjectAltNames entry is a warning (ME1071); Istio does not look.
//   - The warning for a TCP port without addresses (ME1016) also fires for "tcp" in lower case;
//     Istio compares the protocol with "TCP" case-sensitively.
//   - A partial wildcard ("*foo.com") stays a warning (ME1004) with DYNAMIC_DNS, where Istio says
//     nothing: meshentry matches only whole-label wildcards, so such a host never matches.
//   - DestinationRule tls fields that the mode ignores (client certificate with SIMPLE, files with
//     ISTIO_MUTUAL, anything with DISABLE) are a warning (ME1104); Istio drops them silently.
//   - A portLevelSettings port listed twice is a warning (ME1109); Istio uses the first silently.
//     Port number 0 there is an error, since it can match no port.
//   - A consistentHash without a hash key is a warning (ME1105); Istio accepts it.
//   - Messages are meshentry's own; codes, not wording, are the stable interface.
//
// Analysis findings are all warnings. IST0101 is an error in istioctl analyze; here it is a warning,
// because a destination meshentry cannot see may still be a Kubernetes Service.
//
// Codes (E error, W warning, I note). Loading (internal/config) reports ME0001 (E, not YAML or
// JSON), ME0002 (E, a document that does not fit its kind's schema, a duplicate key included),
// ME0003 (I, a document that is not Istio config, such as a Deployment, skipped as istioctl
// validate skips it) and ME0004 (W, an Istio kind meshentry does not read, such as WorkloadEntry
// or AuthorizationPolicy, skipped: unlike a Deployment it would change traffic under Istio).
//
//	ME1001 E  spec.hosts is empty
//	ME1002 E  a ServiceEntry host is "*"
//	ME1003 E  a host is not a DNS name: bad label, over 63/255 characters, wildcard not leading,
//	          all-numeric last label (which also rejects IP addresses)
//	ME1004 W  a partial wildcard such as "*foo.com"
//	ME1005 E  an address is neither an IP nor a CIDR block
//	ME1006 E  a CIDR address with resolution DNS or DNS_ROUND_ROBIN
//	ME1010 E  two ports share a name
//	ME1011 E  two ports share a number
//	ME1012 E  a port number outside 1..65535
//	ME1013 E  a targetPort outside 1..65535
//	ME1014 E  a port name that is missing or not a DNS-1123 label
//	ME1015 E  a protocol Istio does not know (HTTP HTTPS GRPC GRPC-WEB HTTP2 HTTP_PROXY MONGO MYSQL
//	          REDIS TCP TLS UDP, any case; empty means detect)
//	ME1016 W  a TCP or protocol-less port without addresses where Istio allocates none (resolution
//	          NONE, or label networking.istio.io/enable-autoallocate-ip=false)
//	ME1017 E  several hosts on a port that is neither HTTP nor TLS, unless resolution is NONE
//	ME1018 W  several hosts sharing addresses and a TCP-based port, with DNS resolutions
//	ME1019 W  a ServiceEntry without ports (meshentry only)
//	ME1020 E  a resolution other than NONE, STATIC, DNS, DNS_ROUND_ROBIN or DYNAMIC_DNS
//	ME1021 E  resolution NONE with endpoints
//	ME1022 E  DNS or DNS_ROUND_ROBIN without endpoints, and a host that cannot be resolved itself
//	ME1023 E  DNS_ROUND_ROBIN with more than one endpoint
//	ME1024 W  STATIC with neither endpoints nor workloadSelector (meshentry only)
//	ME1025 E  DYNAMIC_DNS with a host that is not a wildcard (the name to resolve comes from the request)
//	ME1026 E  DYNAMIC_DNS with addresses
//	ME1027 E  DYNAMIC_DNS with endpoints
//	ME1028 E  DYNAMIC_DNS on a port that is not HTTP, TLS, GRPC or HTTP2 (raw TCP carries no name)
//	ME1030 E  an endpoint with neither address nor network (DNS: without address)
//	ME1031 W  an endpoint with a network but no address
//	ME1032 E  a STATIC endpoint address that is not an IP or unix:// socket
//	ME1033 E  a DNS endpoint address that is neither an IP nor a DNS name without wildcard
//	ME1034 E  a unix:// endpoint that is not an absolute path or an @abstract name
//	ME1035 E  a unix:// endpoint with ports
//	ME1036 E  a unix:// endpoint on a service without exactly one port
//	ME1037 E  an endpoint port name that spec.ports does not declare
//	ME1038 E  an endpoint port name that is not a DNS-1123 label
//	ME1039 E  an endpoint port number outside 1..65535
//	ME1040 E  an endpoint label key that is not a Kubernetes label key
//	ME1041 E  an endpoint label value that is not a Kubernetes label value
//	ME1050 E  both workloadSelector and endpoints
//	ME1051 E  a workloadSelector label with an empty key
//	ME1052 E  a "*" in a workloadSelector label key or value
//	ME1053 W  a workloadSelector without labels
//	ME1054 W  a workloadSelector with resolution NONE
//	ME1056 W  a targetPort with resolution NONE: the connection keeps the port the client dialled
//	          (meshentry only; a workloadSelector with DNS stays valid, as Istio's own cases say)
//	ME1060 E  an exportTo entry listed twice ("." counts as the own namespace)
//	ME1061 E  an exportTo entry that is not ".", "*", a namespace name, or "~" on a ServiceEntry
//	ME1062 E  "*" with other exportTo entries
//	ME1063 E  "~" with other exportTo entries
//	ME1070 E  over a CRD size limit: 256 hosts, addresses or ports, 4096 endpoints, 64-character
//	          addresses, 128 endpoint ports, 256 endpoint labels, 63-character selector values, ...
//	ME1071 W  an empty subjectAltNames entry (meshentry only)
//	ME1100 E  a DestinationRule host that is missing or not a DNS name
//	ME1101 E  a DestinationRule subset name that is missing, invalid or repeated
//	ME1102 E  a traffic policy (rule, subset) that sets nothing, or both tunnel and proxyProtocol; a
//	          tunnel that is not CONNECT or POST to a valid host and port; a proxyProtocol version
//	          that is neither V1 nor V2
//	ME1103 E  upstream tls that does not fit its mode: MUTUAL without clientCertificate and privateKey
//	          (unless credentialName), credentialName with certificate files, insecureSkipVerify
//	          with a CA or subjectAltNames to verify
//	ME1104 W  tls fields the mode ignores (meshentry only)
//	ME1105 E  consistentHash: httpCookie without a name, with a negative ttl or with unnamed or
//	          repeated attributes, maglev tableSize missing, not prime or too big, minimumRingSize
//	          with a hash algorithm; W the deprecated minimumRingSize, no hash key, an empty header or
//	          query parameter name (meshentry only)
//	ME1106 E  localityLbSetting (and zoneAwareLbSetting, exclusive with it): distribute with failover, weights out of 1..100 or not summing to
//	          100, malformed or overlapping localities, failover within one region, to a zone or
//	          with '*', failover with a topology label in failoverPriority; W failover without
//	          outlierDetection
//	ME1107 E  connectionPool: neither tcp nor http, a negative limit, a duration under 1ms or not
//	          whole milliseconds (tcp.idleTimeout 0s turns it off), useClientProtocol with
//	          h2UpgradePolicy UPGRADE, an http2KeepAlive without interval or timeout
//	ME1108 E  outlierDetection: a bad duration, a percentage outside 0..100, local origin failures
//	          without splitExternalLocalOriginErrors; W the deprecated consecutiveErrors
//	ME1109 E  a portLevelSettings entry that is null, has no port or port number 0, or sets nothing;
//	          W a port listed twice
//	ME1110 E  a VirtualService host that is empty or neither a DNS name nor an IP
//	ME1111 W  a VirtualService without hosts (a delegate, which meshentry does not follow yet)
//	ME1112 E  a route destination host that is missing, "*" or not a DNS name
//	ME1113 E  a regex (uri, scheme, method, authority, header, query, CORS origin, uriRegexRewrite)
//	          that is empty, over 1024 characters or not RE2; regex "*" on a header means present
//	ME1114 E  an empty prefix on a header, method, scheme, authority or query match; a match port
//	          over 65535
//	ME1115 E  a negative route weight, or several destinations whose weights add up to 0
//	ME1116 W  several route weights that do not add up to 100 (meshentry only: Istio and Envoy
//	          accept them and split in proportion)
//	ME1117 E  an http rule without exactly one of route, redirect and directResponse; fault or
//	          rewrite without a route; mirror with mirrors; uri with uriRegexRewrite
//	ME1118 E  a negative timeout, negative attempts, a perTryTimeout <= 0, a retryOn that is neither
//	          an Envoy condition nor a status, a fault or mirror percentage outside 0..100
//	ME1119 E  a tls rule without matches or sniHosts, an SNI host no VirtualService host covers, a
//	          destinationSubnets entry that is not an IP or CIDR
//	ME1120 E  a Gateway name that is not a DNS-1123 label
//	ME1121 E  a Gateway without servers, or a server without hosts or port
//	ME1122 E  a Gateway server host that is malformed (short name, partial wildcard, bad namespace)
//	ME1123 E  a Gateway server port with a bad number or protocol, or a missing or repeated name
//	ME1124 E  an HTTPS or TLS Gateway server without tls settings
//	ME1130 E  a Sidecar that configures nothing
//	ME1131 E  a Sidecar egress listener without hosts, or a host not of the form namespace/host
//	ME1141 E  a loadBalancer warmup without a valid duration, minimumPercent over 100, aggression <= 0
//	ME1142 E  a DestinationRule with a workloadSelector whose exportTo names another namespace
//
//	ME2001 W  two entries without addresses claim the same opaque TCP port (TCP, MONGO, MYSQL,
//	          REDIS or no protocol) in a namespace that sees both; names the winner and why
//	ME2002 W  resolution NONE on an opaque TCP port without addresses: any IP on that port passes
//	ME2003 W  the same host declared in several namespaces that some namespace sees together
//	ME2004 W  a host of a mesh-bound VirtualService that no visible ServiceEntry declares
//	ME2005 W  a Gateway server host that no visible ServiceEntry declares
//	ME2006 W  a Sidecar: decoded and validated, but meshentry does not apply it yet
//	ME2007 W  the same host declared by two ServiceEntries of one namespace: they are not merged;
//	          each port goes to the oldest entry declaring it (Istio has no analyzer for this)
//	ME2008 W  a DestinationRule portLevelSettings port that no ServiceEntry declaring its host (and
//	          visible to its namespace) has: the settings never apply
//	ME2009 W  DestinationRules for one host, namespace, exportTo and selector are merged as Istio
//	          merges them: a newer rule's top-level traffic policy, or a subset name an older rule
//	          already uses, is dropped (Istio only counts duplicate subsets in a push metric)
//	IST0101 W a route destination host that no visible ServiceEntry declares, or a route subset that
//	          no DestinationRule for its host defines (ReferencedResourceNotFound)
//	IST0101 W a VirtualService gateway (spec.gateways or a match's gateways) that names no Gateway;
//	          a bare name found only in another namespace is bound there by meshentry and says so
//	IST0109 W two mesh VirtualServices that some namespace sees both of name the same host: a
//	          sidecar uses only the older (ConflictingMeshGatewayVirtualServiceHosts)
//	IST0130 W a rule never used: after a rule without matches, or every match repeats an earlier
//	          one (VirtualServiceUnreachableRule; per document, as Istio's validation reports it)
//	IST0131 I a match repeating an earlier one, or covered by an earlier uri-prefix-only match
//	          (VirtualServiceIneffectiveMatch)
//	IST0174 W a DestinationRule host that no visible ServiceEntry declares (UnknownDestinationRuleHost)
//	IST0177 W the same host and port declared with different protocols by ServiceEntries that some
//	          namespace sees together (ConflictingServiceEntryProtocol; case-insensitive, an empty
//	          protocol counts as one)
package validate
