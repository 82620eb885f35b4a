package balance

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

func simple(s networking.LoadBalancerSettings_SimpleLB) *networking.LoadBalancerSettings {
	return &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: s}}
}

func hashed(ch *networking.LoadBalancerSettings_ConsistentHashLB) *networking.LoadBalancerSettings {
	return &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{ConsistentHash: ch}}
}

func headerHash(name string) *networking.LoadBalancerSettings_ConsistentHashLB {
	return &networking.LoadBalancerSettings_ConsistentHashLB{HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: name}}
}

func TestFromTrafficPolicyLoadBalancer(t *testing.T) {
	t.Parallel()
	maglev := headerHash("x-user")
	maglev.HashAlgorithm = &networking.LoadBalancerSettings_ConsistentHashLB_Maglev{Maglev: &networking.LoadBalancerSettings_ConsistentHashLB_MagLev{TableSize: 1009}}
	ring := headerHash("x-user")
	ring.HashAlgorithm = &networking.LoadBalancerSettings_ConsistentHashLB_RingHash_{RingHash: &networking.LoadBalancerSettings_ConsistentHashLB_RingHash{MinimumRingSize: 4096}}
	badTable := headerHash("x-user")
	badTable.HashAlgorithm = &networking.LoadBalancerSettings_ConsistentHashLB_Maglev{Maglev: &networking.LoadBalancerSettings_ConsistentHashLB_MagLev{TableSize: 1000}}
	tests := []struct {
		name     string
		lb       *networking.LoadBalancerSettings
		wantLB   LB
		wantHash HashPolicy
		wantSize uint64
		wantErr  string
	}{
		{name: "no loadBalancer is Istio's LEAST_REQUEST", lb: nil, wantLB: LBLeastRequest},
		{name: "UNSPECIFIED is LEAST_REQUEST", lb: simple(networking.LoadBalancerSettings_UNSPECIFIED), wantLB: LBLeastRequest},
		{name: "LEAST_REQUEST", lb: simple(networking.LoadBalancerSettings_LEAST_REQUEST), wantLB: LBLeastRequest},
		{name: "ROUND_ROBIN", lb: simple(networking.LoadBalancerSettings_ROUND_ROBIN), wantLB: LBRoundRobin},
		{name: "RANDOM", lb: simple(networking.LoadBalancerSettings_RANDOM), wantLB: LBRandom},
		{name: "PASSTHROUGH", lb: simple(networking.LoadBalancerSettings_PASSTHROUGH), wantLB: LBPassthrough},
		{name: "a header hash defaults to ring hash", lb: hashed(headerHash("x-user")), wantLB: LBRingHash, wantHash: HashPolicy{Header: "x-user"}},
		{name: "ringHash minimumRingSize is kept", lb: hashed(ring), wantLB: LBRingHash, wantHash: HashPolicy{Header: "x-user"}, wantSize: 4096},
		{name: "maglev tableSize is kept", lb: hashed(maglev), wantLB: LBMaglev, wantHash: HashPolicy{Header: "x-user"}, wantSize: 1009},
		{
			name: "an httpCookie hash keeps name, path and ttl", wantLB: LBRingHash,
			lb: hashed(&networking.LoadBalancerSettings_ConsistentHashLB{HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie{
				HttpCookie: &networking.LoadBalancerSettings_ConsistentHashLB_HTTPCookie{Name: "s", Path: "/p", Ttl: durationpb.New(time.Minute)}}}),
			wantHash: HashPolicy{Cookie: &CookiePolicy{Name: "s", Path: "/p", TTL: time.Minute}},
		},
		{
			name: "a useSourceIp hash", wantLB: LBRingHash, wantHash: HashPolicy{SourceIP: true},
			lb: hashed(&networking.LoadBalancerSettings_ConsistentHashLB{HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp{UseSourceIp: true}}),
		},
		{
			name: "an httpQueryParameterName hash", wantLB: LBRingHash, wantHash: HashPolicy{Query: "u"},
			lb: hashed(&networking.LoadBalancerSettings_ConsistentHashLB{HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName{HttpQueryParameterName: "u"}}),
		},
		{name: "a hash without a key is refused", lb: hashed(&networking.LoadBalancerSettings_ConsistentHashLB{}), wantErr: "needs httpHeaderName"},
		{name: "a maglev table size that is not prime is refused", lb: hashed(badTable), wantErr: "not a prime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := FromTrafficPolicy(&networking.TrafficPolicy{LoadBalancer: tt.lb})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.LB != tt.wantLB || !reflect.DeepEqual(cfg.Hash, tt.wantHash) || cfg.RingSize+cfg.TableSize != tt.wantSize {
				t.Errorf("got LB %v hash %+v size %d, want %v %+v %d", cfg.LB, cfg.Hash, cfg.RingSize+cfg.TableSize, tt.wantLB, tt.wantHash, tt.wantSize)
			}
		})
	}
}

func TestFromTrafficPolicyLocality(t *testing.T) {
	t.Parallel()
	withLocality := func(ls *networking.LocalityLoadBalancerSetting) *networking.LoadBalancerSettings {
		return &networking.LoadBalancerSettings{LocalityLbSetting: ls}
	}
	failover := &networking.LocalityLoadBalancerSetting{Failover: []*networking.LocalityLoadBalancerSetting_Failover{{From: "us-east", To: "eu-west"}}}
	dist := &networking.LocalityLoadBalancerSetting{Distribute: []*networking.LocalityLoadBalancerSetting_Distribute{{From: "us-east/*", To: map[string]uint32{"us-east/*": 80, "eu-west/*": 20}}}}
	tests := []struct {
		name     string
		lb       *networking.LoadBalancerSettings
		outlier  bool
		wantMode LocalityMode
		wantErr  string
	}{
		{name: "without outlierDetection Istio applies no failover", lb: nil, wantMode: LocalityOff},
		{name: "with outlierDetection the default failover applies", lb: nil, outlier: true, wantMode: LocalityFailover},
		{name: "failover without outlierDetection is ignored, as in Istio", lb: withLocality(failover), wantMode: LocalityOff},
		{name: "failover with outlierDetection applies", lb: withLocality(failover), outlier: true, wantMode: LocalityFailover},
		{name: "failoverPriority with outlierDetection applies", lb: withLocality(&networking.LocalityLoadBalancerSetting{FailoverPriority: []string{"version"}}), outlier: true, wantMode: LocalityLabels},
		{name: "distribute applies without outlierDetection", lb: withLocality(dist), wantMode: LocalityDistribute},
		{name: "enabled false turns locality off", lb: withLocality(&networking.LocalityLoadBalancerSetting{Enabled: wrapperspb.Bool(false)}), outlier: true, wantMode: LocalityOff},
		{
			name: "distribute weights that do not add up to 100 are refused", wantErr: "not 100",
			lb: withLocality(&networking.LocalityLoadBalancerSetting{Distribute: []*networking.LocalityLoadBalancerSetting_Distribute{{From: "*", To: map[string]uint32{"a/*": 50}}}}),
		},
		{
			name: "failover to the same region is refused", outlier: true, wantErr: "to itself",
			lb: withLocality(&networking.LocalityLoadBalancerSetting{Failover: []*networking.LocalityLoadBalancerSetting_Failover{{From: "a", To: "a"}}}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tp := &networking.TrafficPolicy{LoadBalancer: tt.lb}
			if tt.outlier {
				tp.OutlierDetection = &networking.OutlierDetection{}
			}
			cfg, err := FromTrafficPolicy(tp)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Locality.Mode != tt.wantMode {
				t.Errorf("mode = %v, want %v", cfg.Locality.Mode, tt.wantMode)
			}
		})
	}
}

func TestFromTrafficPolicyOutlier(t *testing.T) {
	t.Parallel()
	defaults := OutlierConfig{
		Consecutive5xx: 5, ConsecutiveLocalOrigin: 5, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second,
		MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10,
	}
	tests := []struct {
		name string
		od   *networking.OutlierDetection
		want func(o *OutlierConfig)
	}{
		{name: "an empty outlierDetection takes Istio's defaults", od: &networking.OutlierDetection{}, want: func(*OutlierConfig) {}},
		{
			name: "every field is carried over",
			od: &networking.OutlierDetection{
				Consecutive_5XxErrors: wrapperspb.UInt32(7), ConsecutiveGatewayErrors: wrapperspb.UInt32(3),
				SplitExternalLocalOriginErrors: true, ConsecutiveLocalOriginFailures: wrapperspb.UInt32(2),
				Interval: durationpb.New(time.Second), BaseEjectionTime: durationpb.New(time.Minute),
				MaxEjectionPercent: 50, MinHealthPercent: 30,
			},
			want: func(o *OutlierConfig) {
				o.Consecutive5xx, o.ConsecutiveGateway, o.SplitLocalOrigin, o.ConsecutiveLocalOrigin = 7, 3, true, 2
				o.Interval, o.BaseEjectionTime, o.MaxEjectionPercent, o.MinHealthPercent = time.Second, time.Minute, 50, 30
			},
		},
		{name: "consecutive5xxErrors 0 turns the 5xx check off", od: &networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(0)}, want: func(o *OutlierConfig) { o.Consecutive5xx = 0 }},
		{name: "the deprecated consecutiveErrors counts gateway errors only", od: &networking.OutlierDetection{ConsecutiveErrors: 4}, want: func(o *OutlierConfig) { o.Consecutive5xx, o.ConsecutiveGateway = 0, 4 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := FromTrafficPolicy(&networking.TrafficPolicy{OutlierDetection: tt.od})
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			tt.want(&want)
			if cfg.Outlier == nil || *cfg.Outlier != want {
				t.Errorf("outlier = %+v, want %+v", cfg.Outlier, want)
			}
		})
	}
	if _, err := FromTrafficPolicy(&networking.TrafficPolicy{OutlierDetection: &networking.OutlierDetection{Interval: durationpb.New(time.Microsecond)}}); err == nil {
		t.Error("an interval below 1ms was accepted")
	}
}

func TestFromTrafficPolicyPort(t *testing.T) {
	t.Parallel()
	tp := &networking.TrafficPolicy{
		LoadBalancer: simple(networking.LoadBalancerSettings_ROUND_ROBIN),
		PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{{
			Port:             &networking.PortSelector{Number: 8080},
			LoadBalancer:     simple(networking.LoadBalancerSettings_RANDOM),
			OutlierDetection: &networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(2)},
		}},
	}
	tests := []struct {
		name        string
		port        uint32
		wantLB      LB
		wantOutlier bool
	}{
		{name: "a port with its own settings takes them", port: 8080, wantLB: LBRandom, wantOutlier: true},
		{name: "another port takes the top level", port: 80, wantLB: LBRoundRobin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := FromTrafficPolicyPort(tp, tt.port)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.LB != tt.wantLB || (cfg.Outlier != nil) != tt.wantOutlier {
				t.Errorf("LB %v outlier %v, want %v %v", cfg.LB, cfg.Outlier != nil, tt.wantLB, tt.wantOutlier)
			}
		})
	}
	if cfg, _ := FromTrafficPolicy(nil); !reflect.DeepEqual(cfg, PolicyConfig{}) {
		t.Errorf("a nil policy gave %+v, want the zero default", cfg)
	}
}
