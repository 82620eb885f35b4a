package balance_test

import (
	"fmt"

	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/balance"
)

// The calls a proxy makes for one service port whose DestinationRule sets a load balancer and
// outlier detection: once per snapshot, then per request.
func Example() {
	tp := &networking.TrafficPolicy{
		LoadBalancer: &networking.LoadBalancerSettings{
			LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_ROUND_ROBIN},
		},
		OutlierDetection: &networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(2), MaxEjectionPercent: 50},
	}
	// Once per snapshot and service port.
	cfg, err := balance.FromTrafficPolicyPort(tp, 80)
	if err != nil {
		fmt.Println("keeping the default:", err)
	}
	healths := balance.NewHealthSet(balance.HealthConfig{}, 0)
	h := healths.For("api.example.test:80", cfg.Outlier)
	targets := []balance.Target{{Key: "10.0.0.1:80"}, {Key: "10.0.0.2:80"}}
	p := balance.NewPolicyPicker(targets, balance.Client{}, h, cfg)

	// Per request: pick, count it in flight, report how it ended.
	for _, status := range []int{200, 503, 200, 503, 200, 200} {
		i, _ := p.Pick(nil)
		p.Begin(i)
		ejected := h.Report(targets[i].Key, balance.Status(status))
		p.End(i)
		fmt.Println(targets[i].Key, status, ejected)
	}
	// Output:
	// 10.0.0.1:80 200 false
	// 10.0.0.2:80 503 false
	// 10.0.0.1:80 200 false
	// 10.0.0.2:80 503 true
	// 10.0.0.1:80 200 false
	// 10.0.0.1:80 200 false
}
