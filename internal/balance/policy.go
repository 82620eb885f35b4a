package balance

import "time"

// LB is a load-balancing algorithm within one priority.
type LB int

const (
	// LBDefault is meshentry's choice when no DestinationRule applies: weighted random, as before
	// DestinationRules were read.
	LBDefault LB = iota
	// LBRoundRobin is Envoy's weighted round robin: a fixed, smooth rotation for a fixed set.
	LBRoundRobin
	// LBLeastRequest is Istio's default: of two random endpoints the one with fewer requests in
	// flight; with unequal weights every endpoint by weight/(active+1).
	LBLeastRequest
	// LBRandom is weighted random.
	LBRandom
	// LBPassthrough asks the proxy to use the original destination (see Picker.Passthrough).
	LBPassthrough
	// LBRingHash is consistent hashing on a ring (Envoy's ring_hash).
	LBRingHash
	// LBMaglev is consistent hashing on a Maglev table.
	LBMaglev
)

// String returns Istio's name for the algorithm, for explain and logs.
func (l LB) String() string {
	switch l {
	case LBRoundRobin:
		return "ROUND_ROBIN"
	case LBLeastRequest:
		return "LEAST_REQUEST"
	case LBRandom:
		return "RANDOM"
	case LBPassthrough:
		return "PASSTHROUGH"
	case LBRingHash:
		return "RING_HASH"
	case LBMaglev:
		return "MAGLEV"
	default:
		return "WEIGHTED_RANDOM"
	}
}

// Envoy's defaults for the consistent-hash tables.
const (
	// DefaultRingSize is Envoy's minimum_ring_size default.
	DefaultRingSize = 1024
	// MaxRingSize bounds a ring's entries; Envoy's default is 8M, lower here because a ring is
	// built per service port and 1M entries already spread any realistic weight ratio.
	MaxRingSize = 1 << 20
	// DefaultTableSize is Envoy's Maglev table_size default (a prime).
	DefaultTableSize = 65537
	// MaxTableSize bounds a Maglev table, Envoy's limit (5000011, prime).
	MaxTableSize = 5000011
)

// PolicyConfig is the part of a DestinationRule's trafficPolicy the picker and health tracker
// apply, free of proto types; the zero value is meshentry's behaviour without a DestinationRule.
type PolicyConfig struct {
	// LB chooses within a priority.
	LB LB
	// Hash says where the consistent-hash key comes from, for LBRingHash and LBMaglev.
	Hash HashPolicy
	// RingSize is the ring's minimum size (LBRingHash), TableSize the Maglev table's (a prime).
	RingSize  uint64
	TableSize uint64
	// Locality orders and splits endpoints by locality.
	Locality LocalityConfig
	// Outlier, when set, replaces the fixed ejection default (Health.SetOutlier).
	Outlier *OutlierConfig
}

// HashPolicy is consistentHash's key: exactly one of its fields is set.
type HashPolicy struct {
	// Header names the request header whose value is the key.
	Header string
	// Cookie names the cookie whose value is the key.
	Cookie *CookiePolicy
	// SourceIP keys on the client's address.
	SourceIP bool
	// Query names the URL query parameter whose value is the key.
	Query string
}

// CookiePolicy is consistentHash.httpCookie.
type CookiePolicy struct {
	// Name and Path of the cookie.
	Name string
	Path string
	// TTL, when not zero, makes the proxy set the cookie on a request that lacks it (see Key).
	TTL time.Duration
}

// LocalityMode says how endpoints are ranked by where they run.
type LocalityMode int

const (
	// LocalityDefault is meshentry's ranking without a DestinationRule: region, zone, subzone,
	// then network, failing over always.
	LocalityDefault LocalityMode = iota
	// LocalityOff gives every endpoint the same priority (enabled: false, or Istio's rule that
	// failover needs outlierDetection).
	LocalityOff
	// LocalityFailover is Istio's failover: region/zone/subzone, with a failover region from Failover.
	LocalityFailover
	// LocalityLabels is failoverPriority: endpoints matching the proxy on more of Labels rank first.
	LocalityLabels
	// LocalityDistribute is distribute: one priority, traffic split between localities by weight.
	LocalityDistribute
)

// String names the mode for explain: Istio's field that selected it, or "default".
func (m LocalityMode) String() string {
	switch m {
	case LocalityOff:
		return "off"
	case LocalityFailover:
		return "failover"
	case LocalityLabels:
		return "failoverPriority"
	case LocalityDistribute:
		return "distribute"
	default:
		return "default"
	}
}

// LocalityConfig is localityLbSetting with Istio's rules already applied (see FromTrafficPolicy).
type LocalityConfig struct {
	// Mode picks the ranking.
	Mode LocalityMode
	// Failover maps a proxy region to the region it fails over to (LocalityFailover, and
	// LocalityLabels, which then orders each label level by region).
	Failover []RegionFailover
	// Labels is failoverPriority's list: "key" compares with the proxy's label, "key=value" with
	// the value (LocalityLabels).
	Labels []string
	// Distribute lists the rules; the first whose From matches the proxy applies (LocalityDistribute).
	Distribute []Distribution
}

// RegionFailover is one failover entry: a proxy in From fails over to To.
type RegionFailover struct {
	From, To string
}

// Distribution is one distribute entry.
type Distribution struct {
	// From is the proxy locality the rule applies to, "*" wildcards allowed.
	From string
	// To lists destination localities (wildcards allowed) and their share.
	To []LocalityWeight
}

// LocalityWeight is one "to" entry of a distribute rule.
type LocalityWeight struct {
	Locality string
	Weight   uint32
}

// Client is the proxy the picker chooses for: where it runs and its labels.
type Client struct {
	// Locality and Network are the proxy's own.
	Locality Locality
	Network  string
	// Labels are the proxy's labels (--labels), which failoverPriority compares with the endpoints'.
	Labels map[string]string
}
