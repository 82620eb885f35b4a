package kube

import (
	"errors"
	"fmt"
	"os"

	"istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	// DefaultQPS and DefaultBurst pace all requests to the API server; client-go's own defaults
	// (5 and 10) are for controllers that write much more than a proxy.
	DefaultQPS   = 20
	DefaultBurst = 40
)

// Connection says how to reach the API server.
type Connection struct {
	// Kubeconfig is a kubeconfig file; empty tries the in-cluster config, then $KUBECONFIG and
	// ~/.kube/config, as kubectl does.
	Kubeconfig string
	// Context picks a context of the kubeconfig; empty takes its current one.
	Context string
	// QPS and Burst pace the requests; zero means the defaults.
	QPS   float32
	Burst int
}

// Client builds the clientset for c.
func (c Connection) Client() (versioned.Interface, error) {
	cfg, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	if c.QPS > 0 {
		cfg.QPS = c.QPS
	}
	if c.Burst > 0 {
		cfg.Burst = c.Burst
	}
	cfg.UserAgent = "meshentry"
	client, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube client: %w", err)
	}
	return client, nil
}

// restConfig finds the config in the order the flag's help gives.
func (c Connection) restConfig() (*rest.Config, error) {
	if c.Kubeconfig != "" {
		if _, err := os.Stat(c.Kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		return c.fromRules(&clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig})
	}
	cfg, err := rest.InClusterConfig()
	if err == nil {
		return cfg, nil
	}
	if !errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	return c.fromRules(clientcmd.NewDefaultClientConfigLoadingRules())
}

func (c Connection) fromRules(rules *clientcmd.ClientConfigLoadingRules) (*rest.Config, error) {
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.Context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}
