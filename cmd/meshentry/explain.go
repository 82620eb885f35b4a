package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/explain"
	"github.com/meshentry/meshentry/internal/registry"
)

// policyFlag parses --outbound-policy.
func parsePolicy(s string) (allowAny bool, err error) {
	switch strings.ToUpper(s) {
	case "REGISTRY_ONLY", "":
		return false, nil
	case "ALLOW_ANY":
		return true, nil
	}
	return false, usageError("--outbound-policy must be REGISTRY_ONLY or ALLOW_ANY, not %q", s)
}

func newExplainCommand() *cobra.Command {
	var src sourceFlags
	var pf policyFlags
	var locality, network, ip, host, protocol, policy, output string
	var port uint32
	var atGateway bool
	cmd := &cobra.Command{
		Use:   "explain -f PATH... --port N (--host HOST | --ip IP)",
		Short: "Say which service, cluster and endpoints a request would get, and why",
		Long: "explain matches a destination (the IP the application connected to and/or the Host or SNI it sent) " +
			"as the proxy of a workload in --namespace would, and lists the candidate endpoints in the order the proxy prefers them. " +
			"It exits 3 when the request would be refused.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := explain.Request{Namespace: src.namespace, Host: host, Port: port, Locality: locality, Network: network}
			if output != "text" && output != "json" {
				return usageError("-o must be text or json, not %q", output)
			}
			if port == 0 || port > 65535 {
				return usageError("--port is required (1-65535)")
			}
			if host == "" && ip == "" {
				return usageError("give --host, --ip or both")
			}
			if ip != "" {
				a, err := netip.ParseAddr(ip)
				if err != nil {
					return usageError("--ip: %v", err)
				}
				req.IP = a
			}
			if err := setProtocol(&req, protocol); err != nil {
				return err
			}
			var err error
			if req.AllowAny, err = parsePolicy(policy); err != nil {
				return err
			}
			if req.RootNamespace, req.Labels, err = pf.parse(); err != nil {
				return err
			}
			res, err := src.compile(cmd, 1)
			if err != nil {
				return err
			}
			// The request is explained against the valid documents; the rest are reported, not fatal.
			for _, d := range res.Diagnostics {
				if d.Level == diag.Error {
					fmt.Fprintln(cmd.ErrOrStderr(), d)
				}
			}
			rep := explain.Explain(res.Snapshot, req)
			if atGateway {
				rep.Gateway = explain.ExplainGateway(res.Snapshot.Documents, req.Labels, host, port)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return &exitError{code: 2, err: err}
				}
			} else {
				rep.WriteText(cmd.OutOrStdout())
			}
			if rep.Refused() {
				return &exitError{code: 3}
			}
			return nil
		},
	}
	src.register(cmd)
	f := cmd.Flags()
	f.StringVar(&locality, "locality", "", "the proxy's locality, region/zone/subzone")
	f.StringVar(&network, "network", "", "the proxy's network")
	f.StringVar(&ip, "ip", "", "destination IP the application connected to")
	f.StringVar(&host, "host", "", "Host header, SNI or CONNECT host the application sent")
	f.Uint32Var(&port, "port", 0, "destination port")
	f.StringVar(&protocol, "protocol", "", "traffic kind: http, tls or tcp as a sidecar sees it (default: what the declared port implies), or connect for a CONNECT tunnel through the forward proxy")
	f.StringVar(&policy, "outbound-policy", "REGISTRY_ONLY", "REGISTRY_ONLY refuses what no ServiceEntry declares; ALLOW_ANY passes it through")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.BoolVar(&atGateway, "gateway", false, "explain as `run --gateway --labels` would: name the Gateway server that takes the host (the SNI on a TLS port) on --port")
	pf.register(f)
	return cmd
}

// setProtocol reads --protocol into req: the traffic kind a sidecar would see, or a CONNECT.
func setProtocol(req *explain.Request, protocol string) error {
	switch strings.ToLower(protocol) {
	case "":
		req.Protocol = registry.TrafficAny
	case "http":
		req.Protocol = registry.TrafficHTTP
	case "tls":
		req.Protocol = registry.TrafficTLS
	case "tcp":
		req.Protocol = registry.TrafficTCP
	case "connect":
		req.Connect = true
	default:
		return usageError("--protocol must be http, tls, tcp or connect, not %q", protocol)
	}
	return nil
}
