package validate

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// The topology labels failoverPriority may not use together with failover, as Istio lists them.
var topologyLabels = map[string]bool{
	"topology.kubernetes.io/region": true,
	"topology.kubernetes.io/zone":   true,
	"topology.istio.io/subzone":     true,
}

// loadBalancer is Istio's validateLoadBalancer. simple and consistentHash are one protobuf oneof, so
// a document that sets both is already refused when it is decoded.
func loadBalancer(r *report, f string, lb *networking.LoadBalancerSettings, od *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		consistentHash(r, f+".consistentHash", ch)
	}
	if lb.LocalityLbSetting != nil && lb.ZoneAwareLbSetting != nil {
		r.errorf(CodeLocalityLB, f+".zoneAwareLbSetting", "localityLbSetting and zoneAwareLbSetting cannot both be set")
	}
	localityLB(r, f+".localityLbSetting", lb.LocalityLbSetting, od)
	zoneAwareLB(r, f+".zoneAwareLbSetting", lb.ZoneAwareLbSetting, od)
	warmup(r, f+".warmup", lb.Warmup)
}

func consistentHash(r *report, f string, ch *networking.LoadBalancerSettings_ConsistentHashLB) {
	switch key := ch.HashKey.(type) {
	case nil:
		r.warnf(CodeConsistentHash, f, "consistentHash sets no hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName), so every request hashes alike")
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		httpCookie(r, f+".httpCookie", key.HttpCookie)
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		if key.HttpHeaderName == "" {
			r.warnf(CodeConsistentHash, f+".httpHeaderName", "httpHeaderName is empty, so every request hashes alike")
		}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		if key.HttpQueryParameterName == "" {
			r.warnf(CodeConsistentHash, f+".httpQueryParameterName", "httpQueryParameterName is empty, so every request hashes alike")
		}
	}
	if ch.MinimumRingSize != 0 { //nolint:staticcheck // the deprecated field is what is being checked
		r.warnf(CodeConsistentHash, f+".minimumRingSize", "minimumRingSize is deprecated; use ringHash.minimumRingSize")
		if ch.HashAlgorithm != nil {
			r.errorf(CodeConsistentHash, f+".minimumRingSize", "minimumRingSize cannot be set with ringHash or maglev")
		}
	}
	if ml := ch.GetMaglev(); ml != nil {
		switch n := ml.TableSize; {
		case n == 0:
			r.errorf(CodeConsistentHash, f+".maglev.tableSize", "maglev needs tableSize")
		case n >= 5000011:
			r.errorf(CodeConsistentHash, f+".maglev.tableSize", "maglev tableSize %d must be less than 5000011", n)
		case !isPrime(n):
			r.errorf(CodeConsistentHash, f+".maglev.tableSize", "maglev tableSize %d must be a prime number", n)
		}
	}
}

// httpCookie needs a name and unique, named attributes; a ttl is optional (without one the proxy
// only hashes a cookie the client already has), but it may not be negative.
func httpCookie(r *report, f string, c *networking.LoadBalancerSettings_ConsistentHashLB_HTTPCookie) {
	if c.GetName() == "" {
		r.errorf(CodeConsistentHash, f+".name", "httpCookie needs a name")
	}
	if c.GetTtl() != nil && c.GetTtl().AsDuration() < 0 {
		r.errorf(CodeConsistentHash, f+".ttl", "ttl %s is negative", c.GetTtl().AsDuration())
	}
	seen := map[string]bool{}
	for i, a := range c.GetAttributes() {
		switch n := a.GetName(); {
		case n == "":
			r.errorf(CodeConsistentHash, at(f+".attributes", i, ".name"), "a cookie attribute needs a name")
		case seen[n]:
			r.errorf(CodeConsistentHash, at(f+".attributes", i, ".name"), "cookie attribute %q is listed twice", n)
		default:
			seen[n] = true
		}
	}
}

// warmup is Istio's check of loadBalancer.warmup: a duration is required.
func warmup(r *report, f string, w *networking.WarmupConfiguration) {
	if w == nil {
		return
	}
	if w.Duration == nil {
		r.errorf(CodeLoadBalancer, f+".duration", "warmup needs a duration")
	} else {
		duration(r, CodeLoadBalancer, f+".duration", w.Duration)
	}
	if w.MinimumPercent.GetValue() > 100 {
		r.errorf(CodeLoadBalancer, f+".minimumPercent", "minimumPercent %g is over 100", w.MinimumPercent.GetValue())
	}
	if w.Aggression != nil && w.Aggression.GetValue() <= 0 {
		r.errorf(CodeLoadBalancer, f+".aggression", "aggression %g must be greater than 0", w.Aggression.GetValue())
	}
}

// zoneAwareLB is Istio's ValidateZoneAwareLbSetting.
func zoneAwareLB(r *report, f string, lb *networking.ZoneAwareLoadBalancerSetting, od *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	for i, l := range lb.GetFailoverPriority() {
		if topologyLabels[l] {
			r.errorf(CodeLocalityLB, at(f+".failoverPriority", i, ""), "zone-aware failoverPriority may not use the topology label %q: region and zone routing are automatic", l)
		}
	}
	if (len(lb.GetFailover()) > 0 || len(lb.GetFailoverPriority()) > 0) && od == nil {
		r.warnf(CodeLocalityLB, f, "failover needs an outlierDetection policy: without one, no endpoint is ever found unhealthy, so traffic never fails over")
	}
	for i, fo := range lb.GetFailover() {
		ff := at(f+".failover", i, "")
		switch {
		case fo.GetFrom() == fo.GetTo():
			r.errorf(CodeLocalityLB, ff, "failover from %q to itself: from and to must be different regions", fo.GetFrom())
		case strings.Contains(fo.GetFrom(), "/") || strings.Contains(fo.GetTo(), "/"):
			r.errorf(CodeLocalityLB, ff, "zone-aware failover names regions only, not %q to %q", fo.GetFrom(), fo.GetTo())
		case strings.Contains(fo.GetFrom(), "*") || strings.Contains(fo.GetTo(), "*"):
			r.errorf(CodeLocalityLB, ff, "a failover region may not contain '*'")
		}
	}
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// localityLB is Istio's validateLocalityLbSetting.
func localityLB(r *report, f string, lb *networking.LocalityLoadBalancerSetting, od *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if len(lb.Distribute) > 0 && len(lb.Failover) > 0 {
		r.errorf(CodeLocalityLB, f, "distribute and failover cannot both be set")
		return
	}
	if len(lb.Failover) > 0 {
		for i, l := range lb.FailoverPriority {
			if topologyLabels[l] {
				r.errorf(CodeLocalityLB, at(f+".failoverPriority", i, ""), "failover cannot be set together with the topology label %q in failoverPriority", l)
				return
			}
		}
	}
	var from []string
	for i, d := range lb.Distribute {
		df := at(f+".distribute", i, "")
		if d == nil {
			r.errorf(CodeLocalityLB, df, "a distribute entry may not be null")
			continue
		}
		from = append(from, d.From)
		var sum uint32
		var to []string
		for _, loc := range sortedKeys(d.To) {
			w := d.To[loc]
			if w == 0 || w > 100 {
				r.errorf(CodeLocalityLB, df+".to."+loc, "weight %d for locality %q is out of range (1-100)", w, loc)
				return
			}
			sum += w
			to = append(to, loc)
		}
		if sum != 100 {
			r.errorf(CodeLocalityLB, df+".to", "the weights sum to %d; they must sum to 100", sum)
			return
		}
		if msg := localitiesProblem(to); msg != "" {
			r.errorf(CodeLocalityLB, df+".to", "%s", msg)
		}
	}
	if msg := localitiesProblem(from); msg != "" {
		r.errorf(CodeLocalityLB, f+".distribute", "%s", msg)
	}
	if (len(lb.Failover) > 0 || len(lb.FailoverPriority) > 0) && od == nil {
		r.warnf(CodeLocalityLB, f, "failover needs an outlierDetection policy: without one, no endpoint is ever found unhealthy, so traffic never fails over")
	}
	for i, fo := range lb.Failover {
		ff := at(f+".failover", i, "")
		switch {
		case fo == nil:
			r.errorf(CodeLocalityLB, ff, "a failover entry may not be null")
		case fo.From == fo.To:
			r.errorf(CodeLocalityLB, ff, "failover from %q to itself: from and to must be different regions", fo.From)
		case strings.Contains(fo.From, "/") || strings.Contains(fo.To, "/"):
			r.errorf(CodeLocalityLB, ff, "failover names regions only, not %q to %q", fo.From, fo.To)
		case strings.Contains(fo.From, "*") || strings.Contains(fo.To, "*"):
			r.errorf(CodeLocalityLB, ff, "a failover region may not contain '*'")
		}
	}
}

// localitiesProblem is Istio's validateLocalities: each locality is region[/zone[/subzone]], with at
// most one '*' and only at the end, and no locality covers another.
func localitiesProblem(locs []string) string {
	var seen [][]string
	for _, l := range locs {
		if n := strings.Count(l, "*"); n > 1 || (n == 1 && !strings.HasSuffix(l, "*")) {
			return fmt.Sprintf("locality %q may have one wildcard '*', and only at its end", l)
		}
		// As in Istio, anything after the second '/' is the subzone.
		parts := strings.SplitN(l, "/", 3)
		for _, p := range parts {
			if p == "" {
				return fmt.Sprintf("locality %q must not have an empty region, zone or subzone", l)
			}
		}
		if parts[len(parts)-1] == "*" {
			parts = parts[:len(parts)-1]
		}
		for _, s := range seen {
			if covers(s, parts) || covers(parts, s) {
				return fmt.Sprintf("locality %q overlaps one listed before it", l)
			}
		}
		seen = append(seen, parts)
	}
	return ""
}

// covers reports whether locality prefix a (a region, region/zone, ...) includes b.
func covers(a, b []string) bool {
	if len(a) > len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
