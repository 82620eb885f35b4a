package balance

import "strings"

// Locality is where an endpoint or the proxy runs, parsed from Istio's "region/zone/subzone" form.
type Locality struct {
	// Region, Zone and Subzone are compared in that order; an empty part is a value like any other,
	// as in Istio.
	Region  string
	Zone    string
	Subzone string
}

// ParseLocality splits "region/zone/subzone", leaving missing parts empty and ignoring segments past
// the third, because Istio allows them but never uses them for priority.
func ParseLocality(s string) Locality {
	var l Locality
	if s == "" {
		return l
	}
	parts := strings.SplitN(s, "/", 4)
	l.Region = parts[0]
	if len(parts) > 1 {
		l.Zone = parts[1]
	}
	if len(parts) > 2 {
		l.Subzone = parts[2]
	}
	return l
}

// String returns the "region/zone/subzone" form, so explain output reads like the label it came from.
func (l Locality) String() string {
	switch {
	case l.Subzone != "":
		return l.Region + "/" + l.Zone + "/" + l.Subzone
	case l.Zone != "":
		return l.Region + "/" + l.Zone
	default:
		return l.Region
	}
}

// NetworkPenalty is added to the priority of an endpoint on another network than the proxy, so that
// every same-network endpoint, however far, is preferred to crossing a network boundary (which in
// Istio means going through an east-west gateway) while locality still orders the far side.
const NetworkPenalty = 4

// Priority ranks an endpoint's locality against the proxy's, 0 being the best, the way Istio's
// locality failover does; a proxy without a locality ranks everything 0 because it has nothing to be
// close to.
func Priority(self, ep Locality) int {
	switch {
	case self == Locality{}:
		return 0
	case self.Region != ep.Region:
		return 3
	case self.Zone != ep.Zone:
		return 2
	case self.Subzone != ep.Subzone:
		return 1
	default:
		return 0
	}
}

// rank is Priority plus NetworkPenalty when both networks are known and differ; an unset network on
// either side is taken as "the same", as Istio does.
func rank(self Locality, network string, ep Locality, epNetwork string) int {
	p := Priority(self, ep)
	if otherNetwork(network, epNetwork) {
		p += NetworkPenalty
	}
	return p
}

func otherNetwork(self, ep string) bool {
	return self != "" && ep != "" && self != ep
}

// reason says in words why an endpoint got its priority, for the explain command.
func reason(self Locality, network string, ep Locality, epNetwork string) string {
	if otherNetwork(network, epNetwork) {
		return "other network"
	}
	if self == (Locality{}) {
		return "proxy has no locality"
	}
	switch Priority(self, ep) {
	case 0:
		return "same region/zone/subzone as the proxy"
	case 1:
		return "same zone"
	case 2:
		return "same region"
	default:
		return "other region"
	}
}
