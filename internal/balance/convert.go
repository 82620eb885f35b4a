package balance

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
)

// Istio's and Envoy's outlierDetection defaults, applied to fields a DestinationRule leaves unset.
const (
	defaultConsecutive5xx   = 5
	defaultLocalOrigin      = 5
	defaultInterval         = 10 * time.Second
	defaultBaseEjectionTime = 30 * time.Second
	defaultMaxEjectionTime  = 300 * time.Second
	defaultMaxEjectionPct   = 10
)

// FromTrafficPolicy turns the trafficPolicy that applies to a service port into the picker's and
// health tracker's configuration. A nil policy gives the zero PolicyConfig, meshentry's behaviour
// without a DestinationRule. The policy is taken as given: pass the effective one for the port
// (FromTrafficPolicyPort applies portLevelSettings). On error the DestinationRule asks for
// something Istio or Envoy rejects, and the caller should keep the default.
func FromTrafficPolicy(tp *networking.TrafficPolicy) (PolicyConfig, error) {
	if tp == nil {
		return PolicyConfig{}, nil
	}
	return fromParts(tp.GetLoadBalancer(), tp.GetOutlierDetection())
}

// FromTrafficPolicyPort is FromTrafficPolicy for one port: a portLevelSettings entry for port
// replaces the top-level loadBalancer and outlierDetection it sets, as Istio merges them.
func FromTrafficPolicyPort(tp *networking.TrafficPolicy, port uint32) (PolicyConfig, error) {
	if tp == nil {
		return PolicyConfig{}, nil
	}
	lb, od := tp.GetLoadBalancer(), tp.GetOutlierDetection()
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() != port {
			continue
		}
		if pl.GetLoadBalancer() != nil {
			lb = pl.GetLoadBalancer()
		}
		if pl.GetOutlierDetection() != nil {
			od = pl.GetOutlierDetection()
		}
		break
	}
	return fromParts(lb, od)
}

func fromParts(lb *networking.LoadBalancerSettings, od *networking.OutlierDetection) (PolicyConfig, error) {
	var cfg PolicyConfig
	var errs []error
	if err := loadBalancer(lb, &cfg); err != nil {
		errs = append(errs, fmt.Errorf("loadBalancer: %w", err))
	}
	loc, err := localityConfig(lb.GetLocalityLbSetting(), od != nil)
	if err != nil {
		errs = append(errs, fmt.Errorf("localityLbSetting: %w", err))
	}
	cfg.Locality = loc
	if od != nil {
		o, err := outlierConfig(od)
		if err != nil {
			errs = append(errs, fmt.Errorf("outlierDetection: %w", err))
		}
		cfg.Outlier = o
	}
	if len(errs) > 0 {
		return PolicyConfig{}, errors.Join(errs...)
	}
	return cfg, nil
}

// loadBalancer reads simple or consistentHash; UNSPECIFIED (and no loadBalancer) is Istio's
// default LEAST_REQUEST, as is backendUtilization, which needs load reports meshentry has not.
func loadBalancer(lb *networking.LoadBalancerSettings, cfg *PolicyConfig) error {
	cfg.LB = LBLeastRequest
	if ch := lb.GetConsistentHash(); ch != nil {
		return consistentHash(ch, cfg)
	}
	switch lb.GetSimple() {
	case networking.LoadBalancerSettings_ROUND_ROBIN:
		cfg.LB = LBRoundRobin
	case networking.LoadBalancerSettings_RANDOM:
		cfg.LB = LBRandom
	case networking.LoadBalancerSettings_PASSTHROUGH:
		cfg.LB = LBPassthrough
	}
	return nil
}

func consistentHash(ch *networking.LoadBalancerSettings_ConsistentHashLB, cfg *PolicyConfig) error {
	cfg.LB, cfg.RingSize = LBRingHash, ch.GetMinimumRingSize()
	if m := ch.GetMaglev(); m != nil {
		cfg.LB, cfg.TableSize = LBMaglev, m.GetTableSize()
		if cfg.TableSize != 0 && (cfg.TableSize > MaxTableSize || nextPrime(cfg.TableSize) != cfg.TableSize) {
			return fmt.Errorf("maglev tableSize %d is not a prime up to %d", cfg.TableSize, MaxTableSize)
		}
	} else if r := ch.GetRingHash(); r != nil && r.GetMinimumRingSize() != 0 {
		cfg.RingSize = r.GetMinimumRingSize()
	}
	if cfg.RingSize > MaxRingSize {
		return fmt.Errorf("minimumRingSize %d is above %d", cfg.RingSize, MaxRingSize)
	}
	switch {
	case ch.GetHttpHeaderName() != "":
		cfg.Hash.Header = ch.GetHttpHeaderName()
	case ch.GetHttpCookie() != nil:
		c := ch.GetHttpCookie()
		if c.GetName() == "" {
			return errors.New("httpCookie needs a name")
		}
		ttl, err := duration(c.GetTtl(), 0)
		if err != nil {
			return fmt.Errorf("httpCookie ttl: %w", err)
		}
		cfg.Hash.Cookie = &CookiePolicy{Name: c.GetName(), Path: c.GetPath(), TTL: ttl}
	case ch.GetUseSourceIp():
		cfg.Hash.SourceIP = true
	case ch.GetHttpQueryParameterName() != "":
		cfg.Hash.Query = ch.GetHttpQueryParameterName()
	default:
		return errors.New("consistentHash needs httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName")
	}
	return nil
}

// localityConfig applies Istio's rules (pilot's ApplyLocalityLoadBalancer): enabled: false turns
// locality off; distribute applies by itself; failover and failoverPriority, and the default
// region/zone failover, apply only with outlierDetection, because without ejection Envoy never
// sees a priority empty and never fails over, so Istio leaves every endpoint at one priority.
func localityConfig(ls *networking.LocalityLoadBalancerSetting, outlier bool) (LocalityConfig, error) {
	if ls.GetEnabled() != nil && !ls.GetEnabled().GetValue() {
		return LocalityConfig{Mode: LocalityOff}, nil
	}
	if len(ls.GetDistribute()) > 0 {
		if len(ls.GetFailover()) > 0 || len(ls.GetFailoverPriority()) > 0 {
			return LocalityConfig{}, errors.New("distribute cannot be combined with failover or failoverPriority")
		}
		return distributeConfig(ls.GetDistribute())
	}
	var failover []RegionFailover
	for _, f := range ls.GetFailover() {
		if f.GetFrom() == f.GetTo() {
			return LocalityConfig{}, fmt.Errorf("failover from %q to itself", f.GetFrom())
		}
		failover = append(failover, RegionFailover{From: f.GetFrom(), To: f.GetTo()})
	}
	switch {
	case !outlier:
		return LocalityConfig{Mode: LocalityOff}, nil
	case len(ls.GetFailoverPriority()) > 0:
		return LocalityConfig{Mode: LocalityLabels, Labels: slices.Clone(ls.GetFailoverPriority()), Failover: failover}, nil
	default:
		return LocalityConfig{Mode: LocalityFailover, Failover: failover}, nil
	}
}

func distributeConfig(ds []*networking.LocalityLoadBalancerSetting_Distribute) (LocalityConfig, error) {
	cfg := LocalityConfig{Mode: LocalityDistribute}
	for _, d := range ds {
		dist := Distribution{From: d.GetFrom()}
		var sum uint32
		for loc, w := range d.GetTo() {
			dist.To = append(dist.To, LocalityWeight{Locality: loc, Weight: w})
			sum += w
		}
		if sum != 100 {
			return LocalityConfig{}, fmt.Errorf("distribute from %q: weights add up to %d, not 100", d.GetFrom(), sum)
		}
		// Map order is random; sorting makes ties between equally specific entries reproducible.
		slices.SortFunc(dist.To, func(a, b LocalityWeight) int { return strings.Compare(a.Locality, b.Locality) })
		cfg.Distribute = append(cfg.Distribute, dist)
	}
	return cfg, nil
}

func outlierConfig(od *networking.OutlierDetection) (*OutlierConfig, error) {
	o := &OutlierConfig{
		Consecutive5xx:         defaultConsecutive5xx,
		SplitLocalOrigin:       od.GetSplitExternalLocalOriginErrors(),
		ConsecutiveLocalOrigin: defaultLocalOrigin,
		ConsecutiveGateway:     od.GetConsecutiveGatewayErrors().GetValue(),
		MaxEjectionTime:        defaultMaxEjectionTime,
		MaxEjectionPercent:     defaultMaxEjectionPct,
		MinHealthPercent:       int(od.GetMinHealthPercent()),
	}
	switch {
	case od.GetConsecutive_5XxErrors() != nil:
		o.Consecutive5xx = od.GetConsecutive_5XxErrors().GetValue()
	case od.GetConsecutiveErrors() > 0: //nolint:staticcheck // Istio still honours the deprecated field.
		// Istio maps the deprecated consecutiveErrors to gateway errors only (istio/api#617).
		o.Consecutive5xx, o.ConsecutiveGateway = 0, uint32(od.GetConsecutiveErrors()) //nolint:staticcheck
	}
	if v := od.GetConsecutiveLocalOriginFailures(); v != nil {
		o.ConsecutiveLocalOrigin = v.GetValue()
	}
	if p := od.GetMaxEjectionPercent(); p > 0 {
		o.MaxEjectionPercent = int(p)
	}
	if o.MaxEjectionPercent > 100 || od.GetMaxEjectionPercent() < 0 {
		return nil, fmt.Errorf("maxEjectionPercent %d is not a percentage", od.GetMaxEjectionPercent())
	}
	if o.MinHealthPercent < 0 || o.MinHealthPercent > 100 {
		return nil, fmt.Errorf("minHealthPercent %d is not a percentage", o.MinHealthPercent)
	}
	var err error
	if o.Interval, err = duration(od.GetInterval(), defaultInterval); err != nil {
		return nil, fmt.Errorf("interval: %w", err)
	}
	if o.BaseEjectionTime, err = duration(od.GetBaseEjectionTime(), defaultBaseEjectionTime); err != nil {
		return nil, fmt.Errorf("baseEjectionTime: %w", err)
	}
	return o, nil
}

// duration reads a proto duration, def when unset; Istio requires at least 1ms.
func duration(d *durationpb.Duration, def time.Duration) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	v := d.AsDuration()
	if v < time.Millisecond {
		return 0, fmt.Errorf("%v is below 1ms", v)
	}
	return v, nil
}
