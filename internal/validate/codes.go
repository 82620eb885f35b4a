package validate

// Codes of per-document findings (Document). They never change meaning once released; a retired
// code is not reused. The table in doc.go says what each one means and whether Istio agrees.
const (
	CodeHostsRequired       = "ME1001" // spec.hosts is empty
	CodeHostFullWildcard    = "ME1002" // a ServiceEntry host is "*"
	CodeHostInvalid         = "ME1003" // a host is not a DNS name (with an optional leading wildcard)
	CodeHostPartialWildcard = "ME1004" // warning: a wildcard that is not a whole leading label, like "*foo.com"

	CodeAddressInvalid = "ME1005" // an address is neither an IP nor a CIDR block
	CodeCIDRResolution = "ME1006" // a CIDR address with resolution DNS or DNS_ROUND_ROBIN

	CodePortNameDuplicate   = "ME1010" // two ports share a name
	CodePortNumberDuplicate = "ME1011" // two ports share a number
	CodePortNumberRange     = "ME1012" // a port number outside 1..65535
	CodeTargetPortRange     = "ME1013" // a targetPort outside 1..65535
	CodePortNameInvalid     = "ME1014" // a port name that is not a DNS-1123 label
	CodeProtocolUnknown     = "ME1015" // a protocol Istio does not know
	CodeTCPWithoutAddresses = "ME1016" // warning: a TCP or protocol-less port with no addresses and no auto-allocated one
	CodeMultiHostOpaquePort = "ME1017" // several hosts on a port that is neither HTTP nor TLS, resolution not NONE
	CodeMultiHostAddressTCP = "ME1018" // warning: several hosts with addresses and a TCP port (DNS resolutions)
	CodeNoPorts             = "ME1019" // warning (meshentry only): a ServiceEntry without ports

	CodeResolutionUnsupported = "ME1020" // a resolution value meshentry (and Istio's validator) does not accept
	CodeNoneWithEndpoints     = "ME1021" // resolution NONE with endpoints
	CodeDNSHostNotFQDN        = "ME1022" // DNS resolution, no endpoints, and a host that cannot be resolved
	CodeDNSRoundRobinEndpoint = "ME1023" // DNS_ROUND_ROBIN with more than one endpoint
	CodeStaticNoEndpoints     = "ME1024" // warning (meshentry only): STATIC with neither endpoints nor workloadSelector
	CodeDynamicDNSHost        = "ME1025" // DYNAMIC_DNS with a host that is not a wildcard
	CodeDynamicDNSAddresses   = "ME1026" // DYNAMIC_DNS with addresses
	CodeDynamicDNSEndpoints   = "ME1027" // DYNAMIC_DNS with endpoints
	CodeDynamicDNSProtocol    = "ME1028" // DYNAMIC_DNS on a port that is not HTTP, TLS, GRPC or HTTP2

	CodeEndpointAddressRequired = "ME1030" // an endpoint with neither address nor network
	CodeEndpointNetworkOnly     = "ME1031" // warning: an endpoint with a network but no address
	CodeEndpointNotIP           = "ME1032" // a STATIC endpoint address that is not an IP or unix socket
	CodeEndpointNotFQDN         = "ME1033" // a DNS endpoint address that is neither an IP nor a DNS name
	CodeUnixAddressInvalid      = "ME1034" // a unix:// endpoint that is not an absolute path or abstract name
	CodeUnixEndpointPorts       = "ME1035" // a unix:// endpoint that lists ports
	CodeUnixOnePort             = "ME1036" // a unix:// endpoint on a service that has not exactly one port
	CodeEndpointPortUndeclared  = "ME1037" // an endpoint port name the service does not declare
	CodeEndpointPortName        = "ME1038" // an endpoint port name that is not a DNS-1123 label
	CodeEndpointPortRange       = "ME1039" // an endpoint port number outside 1..65535
	CodeLabelKeyInvalid         = "ME1040" // an endpoint label key that is not a Kubernetes label key
	CodeLabelValueInvalid       = "ME1041" // an endpoint label value that is not a Kubernetes label value

	CodeSelectorWithEndpoints = "ME1050" // both workloadSelector and endpoints
	CodeSelectorEmptyKey      = "ME1051" // a workloadSelector label with an empty key
	CodeSelectorWildcard      = "ME1052" // a "*" in a workloadSelector label key or value
	CodeSelectorNoLabels      = "ME1053" // warning: a workloadSelector without labels
	CodeSelectorWithNone      = "ME1054" // warning: a workloadSelector with resolution NONE
	CodeTargetPortWithNone    = "ME1056" // warning (meshentry only): a targetPort with resolution NONE

	CodeExportToDuplicate = "ME1060" // an exportTo entry listed twice ("." counts as the own namespace)
	CodeExportToInvalid   = "ME1061" // an exportTo entry that is not ".", "*", "~" or a namespace name
	CodeExportToPublicMix = "ME1062" // "*" together with other exportTo entries
	CodeExportToNoneMix   = "ME1063" // "~" together with other exportTo entries

	CodeSchemaLimit     = "ME1070" // a list, map or string longer than Istio's CRD schema allows
	CodeSubjectAltEmpty = "ME1071" // warning (meshentry only): an empty subjectAltNames entry

	CodeDestinationRuleHost   = "ME1100" // a DestinationRule host that is missing or not a DNS name
	CodeDestinationRuleSubset = "ME1101" // a DestinationRule subset name that is missing, invalid or repeated
	CodeTrafficPolicyEmpty    = "ME1102" // a traffic policy that sets nothing; bad tunnel or proxyProtocol settings
	CodeClientTLS             = "ME1103" // upstream tls fields that do not fit their mode
	CodeClientTLSIgnored      = "ME1104" // warning (meshentry only): tls fields the mode ignores
	CodeConsistentHash        = "ME1105" // a consistentHash without a usable key, cookie, ring or maglev table
	CodeLoadBalancer          = "ME1141" // a loadBalancer warmup without a valid duration, percentage or aggression
	CodeSelectorExportTo      = "ME1142" // a DestinationRule with a workloadSelector exported beyond its namespace
	CodeLocalityLB            = "ME1106" // a localityLbSetting whose distribute or failover is malformed
	CodeConnectionPool        = "ME1107" // a connectionPool that is empty, negative or has a bad duration
	CodeOutlierDetection      = "ME1108" // an outlierDetection with a bad duration, percentage or local-origin setting
	CodePortLevelSettings     = "ME1109" // a portLevelSettings entry without a port or settings (warning: a repeated port)
	CodeVirtualServiceHost    = "ME1110" // a VirtualService host that is empty or not a DNS name or IP
	CodeVirtualServiceNoHosts = "ME1111" // warning: a VirtualService without hosts (a delegate)
	CodeRouteDestination      = "ME1112" // a route destination host that is missing, "*" or not a DNS name
	CodeRegex                 = "ME1113" // a regex (match, rewrite, CORS origin) that is empty, too long or not RE2
	CodeStringMatch           = "ME1114" // an empty prefix on a header, method, scheme, authority or query match; a bad match port
	CodeWeight                = "ME1115" // a negative route weight, or several destinations that all weigh 0
	CodeWeightSum             = "ME1116" // warning (meshentry only): several route weights that do not add up to 100
	CodeRouteAction           = "ME1117" // an http rule without exactly one of route, redirect, directResponse; actions that do not fit
	CodeRetryTiming           = "ME1118" // a bad timeout, retries (attempts, perTryTimeout, retryOn), fault or mirror percentage
	CodeL4Match               = "ME1119" // a tls rule without matches or sniHosts, an SNI outside the hosts, a bad destinationSubnet
	CodeGatewayName           = "ME1120" // a Gateway name that is not a DNS-1123 label
	CodeGatewayServers        = "ME1121" // a Gateway without servers, or a server without hosts or port
	CodeGatewayHost           = "ME1122" // a Gateway server host that is malformed
	CodeGatewayPort           = "ME1123" // a Gateway server port that is malformed or repeats a name
	CodeGatewayTLS            = "ME1124" // an HTTPS or TLS Gateway server without tls settings
	CodeSidecarEmpty          = "ME1130" // a Sidecar that configures nothing
	CodeSidecarEgressHost     = "ME1131" // a Sidecar egress listener host that is missing or malformed
)

// Codes of cross-document findings (Analyze). Istio's own istioctl analyze code is used where the
// meaning is the same; the rest are meshentry's.
const (
	CodeTCPPortClash         = "ME2001" // two address-less entries claim the same opaque TCP port
	CodeNonePortOpen         = "ME2002" // resolution NONE on an opaque TCP port without addresses
	CodeHostInManyNamespaces = "ME2003" // the same host declared in several namespaces visible together
	CodeVirtualServiceHostSE = "ME2004" // a mesh VirtualService host that no ServiceEntry declares
	CodeGatewayHostSE        = "ME2005" // a Gateway server host that no ServiceEntry declares
	CodeNotAppliedYet        = "ME2006" // a decoded kind that meshentry does not act on yet
	CodeHostTwiceInNamespace = "ME2007" // the same host declared by two ServiceEntries of one namespace
	CodePortLevelUndeclared  = "ME2008" // a DestinationRule portLevelSettings port no matching ServiceEntry declares
	CodeDestinationRuleMerge = "ME2009" // a DestinationRule's traffic policy or subset that a merge with an older one drops

	CodeReferencedHostNotFound = "IST0101" // Istio's ReferencedResourceNotFound: a route destination host or subset
	CodeGatewayNotFound        = "IST0101" // Istio's ReferencedResourceNotFound: a VirtualService gateway
	CodeMeshHostConflict       = "IST0109" // Istio's ConflictingMeshGatewayVirtualServiceHosts: two mesh VirtualServices, one host
	CodeUnreachableRule        = "IST0130" // Istio's VirtualServiceUnreachableRule (a per-document warning, as in Istio)
	CodeIneffectiveMatch       = "IST0131" // Istio's VirtualServiceIneffectiveMatch (info)
	CodeUnknownDRHost          = "IST0174" // Istio's UnknownDestinationRuleHost
	CodeConflictingProtocol    = "IST0177" // Istio's ConflictingServiceEntryProtocol: one host and port, several protocols
)
