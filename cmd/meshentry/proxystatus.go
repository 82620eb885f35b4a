package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// proxyStatus is one proxy's line of `proxy-status`.
type proxyStatus struct {
	Name  string                `json:"name"`
	ID    string                `json:"id"`
	Types map[string]typeStatus `json:"types"`
}

type typeStatus struct {
	Status  string `json:"status"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// shortTypes are istioctl's column names for the type URLs.
var shortTypes = map[string]string{
	"type.googleapis.com/envoy.config.cluster.v3.Cluster":                "CDS",
	"type.googleapis.com/envoy.config.listener.v3.Listener":              "LDS",
	"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment": "EDS",
	"type.googleapis.com/envoy.config.route.v3.RouteConfiguration":       "RDS",
}

func newProxyStatusCommand() *cobra.Command {
	var addr, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "proxy-status --xds ADDR",
		Short: "List the proxies connected to `meshentry xds`, per resource type SYNCED, STALE or NACK (read over CSDS)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError("-o must be text or json, not %q", output)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			list, err := fetchProxyStatus(ctx, addr)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			return writeProxyStatus(cmd.OutOrStdout(), list)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "xds", "127.0.0.1:15010", "the meshentry xds server, HOST:PORT (plaintext, loopback)")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the server")
	return cmd
}

// fetchProxyStatus asks the server's CSDS service once.
func fetchProxyStatus(ctx context.Context, addr string) ([]proxyStatus, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("proxy-status: %s: %w", addr, err)
	}
	defer cc.Close()
	resp, err := statusv3.NewClientStatusDiscoveryServiceClient(cc).FetchClientStatus(ctx, &statusv3.ClientStatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("proxy-status: %s: %w", addr, err)
	}
	var out []proxyStatus
	for _, c := range resp.Config {
		ps := proxyStatus{Name: c.GetNode().GetCluster(), ID: c.GetNode().GetId(), Types: map[string]typeStatus{}}
		for _, g := range c.GenericXdsConfigs {
			ts := typeStatus{Status: "STALE", Version: g.VersionInfo}
			switch {
			case g.ClientStatus == adminv3.ClientResourceStatus_NACKED:
				ts.Status, ts.Error = "NACK", g.GetErrorState().GetDetails()
			case g.ConfigStatus == statusv3.ConfigStatus_SYNCED:
				ts.Status = "SYNCED"
			}
			name := shortTypes[g.TypeUrl]
			if name == "" {
				name = g.TypeUrl
			}
			ps.Types[name] = ts
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || out[i].Name == out[j].Name && out[i].ID < out[j].ID
	})
	return out, nil
}

// writeProxyStatus prints istioctl's layout: NAME then one column per type, "STATUS (version)".
func writeProxyStatus(w io.Writer, list []proxyStatus) error {
	cols := []string{"CDS", "LDS", "EDS", "RDS"}
	extra := map[string]bool{}
	for _, ps := range list {
		for t := range ps.Types {
			if !strings.Contains("CDS LDS EDS RDS", t) {
				extra[t] = true
			}
		}
	}
	cols = append(cols, sortedSet(extra)...)
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\t"+strings.Join(cols, "\t"))
	for _, ps := range list {
		cells := []string{ps.Name}
		for _, c := range cols {
			ts, ok := ps.Types[c]
			switch {
			case !ok:
				cells = append(cells, "NOT SENT")
			case len(ts.Version) > 8:
				cells = append(cells, ts.Status+" ("+ts.Version[:8]+")")
			default:
				cells = append(cells, ts.Status+" ("+ts.Version+")")
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
