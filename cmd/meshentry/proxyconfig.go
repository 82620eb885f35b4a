package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshentry/meshentry/internal/admin"
)

// proxyConfigKinds maps each proxy-config argument to the admin endpoints it reads and the table
// it prints; every one prints the JSON of its first endpoint under -o json.
var proxyConfigKinds = map[string]struct {
	paths []string
	table func(w io.Writer, bodies [][]byte) error
}{
	"clusters":  {paths: []string{"/clusters?format=json", "/registry"}, table: clustersTable},
	"endpoints": {paths: []string{"/clusters?format=json"}, table: endpointsTable},
	"listeners": {paths: []string{"/listeners?format=json"}, table: listenersTable},
	"routes":    {paths: []string{"/routes"}, table: routesTable},
	"registry":  {paths: []string{"/registry"}, table: registryTable},
	"dns":       {paths: []string{"/dns"}, table: dnsTable},
}

func newProxyConfigCommand() *cobra.Command {
	var adminAddr, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "proxy-config clusters|endpoints|listeners|routes|registry|dns [--admin ADDR] [-o table|json]",
		Short: "Show a running proxy's clusters, endpoints, listeners, routes, registry or DNS allocations, read from its admin API",
		Long: "proxy-config reads the admin API of a running `meshentry run` and prints what it serves as tables, " +
			"in the spirit of istioctl proxy-config. It exits 1 when the admin API cannot be read.",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"clusters", "endpoints", "listeners", "routes", "registry", "dns"},
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := proxyConfigKinds[args[0]]
			if !ok {
				return usageError("proxy-config: unknown kind %q; want clusters, endpoints, listeners, routes, registry or dns", args[0])
			}
			if output != "table" && output != "json" {
				return usageError("-o must be table or json, not %q", output)
			}
			base := adminAddr
			if !strings.Contains(base, "://") {
				base = "http://" + base
			}
			client := &http.Client{Timeout: timeout}
			var bodies [][]byte
			for _, p := range kind.paths {
				b, err := fetchAdmin(cmd.Context(), client, strings.TrimSuffix(base, "/")+p)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				bodies = append(bodies, b)
				if output == "json" {
					_, err := cmd.OutOrStdout().Write(b)
					return err
				}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 3, ' ', 0)
			if err := kind.table(tw, bodies); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("proxy-config %s: %w", args[0], err)}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&adminAddr, "admin", "127.0.0.1:15000", "admin address of the running proxy (HOST:PORT or a URL)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json (the admin API's own JSON)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the admin API")
	return cmd
}

// maxAdminBody bounds what proxy-config reads of one admin answer.
const maxAdminBody = 64 << 20

// fetchAdmin GETs url and returns its body, which must come with 200.
func fetchAdmin(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("admin request %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the admin API (is meshentry run serving --admin there?): %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the answer: %w", url, err)
	}
	if len(b) > maxAdminBody {
		return nil, fmt.Errorf("GET %s: answer over %d bytes", url, maxAdminBody)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// decode unmarshals an admin answer, naming what it was on failure.
func decode(b []byte, what string, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", what, err)
	}
	return nil
}

// clusterName splits outbound|PORT|SUBSET|HOST; a name of another form is the host.
func clusterName(name string) (direction, port, subset, host string) {
	parts := strings.SplitN(name, "|", 4)
	if len(parts) != 4 {
		return "", "", "", name
	}
	return parts[0], parts[1], parts[2], parts[3]
}

// envoyClusterType is the Envoy cluster type Istio gives a ServiceEntry resolution.
func envoyClusterType(resolution string) string {
	switch resolution {
	case "STATIC":
		return "EDS"
	case "DNS":
		return "STRICT_DNS"
	case "DNS_ROUND_ROBIN":
		return "LOGICAL_DNS"
	case "NONE":
		return "ORIGINAL_DST"
	case "DYNAMIC_DNS":
		return "DYNAMIC_FORWARD_PROXY"
	}
	return resolution
}

func clustersTable(w io.Writer, bodies [][]byte) error {
	var cs admin.ClustersJSON
	var reg admin.RegistryJSON
	if err := decode(bodies[0], "/clusters", &cs); err != nil {
		return err
	}
	if err := decode(bodies[1], "/registry", &reg); err != nil {
		return err
	}
	types := map[string]string{}
	for _, svc := range reg.Services {
		for _, p := range svc.Ports {
			if _, ok := types[p.Cluster]; !ok {
				types[p.Cluster] = envoyClusterType(svc.Resolution)
			}
		}
	}
	fmt.Fprintln(w, "SERVICE FQDN\tPORT\tSUBSET\tDIRECTION\tTYPE\tENDPOINTS")
	for _, c := range cs.ClusterStatuses {
		dir, port, subset, host := clusterName(c.Name)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", host, dash(port), dash(subset), dash(dir), dash(types[c.Name]), len(c.HostStatuses))
	}
	return nil
}

func endpointsTable(w io.Writer, bodies [][]byte) error {
	var cs admin.ClustersJSON
	if err := decode(bodies[0], "/clusters", &cs); err != nil {
		return err
	}
	fmt.Fprintln(w, "ENDPOINT\tSTATUS\tOUTLIER CHECK\tCLUSTER\tWEIGHT\tLOCALITY\tRQ ACTIVE\tRQ TOTAL\tRQ ERROR\tCX ACTIVE\tCX FAIL\tEJECTIONS")
	for _, c := range cs.ClusterStatuses {
		for _, h := range c.HostStatuses {
			outlier := "OK"
			if h.HealthStatus.FailedOutlierCheck {
				outlier = "FAILED"
			}
			stats := map[string]uint64{}
			for _, s := range h.Stats {
				stats[s.Name] = s.Number()
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", hostAddress(h.Address), dash(h.HealthStatus.EDSHealthStatus), outlier,
				c.Name, h.Weight, dash(localityOf(h.Locality)), stats["rq_active"], stats["rq_total"], stats["rq_error"], stats["cx_active"],
				stats["cx_connect_fail"], stats["ejections_total"])
		}
	}
	return nil
}

// hostAddress writes an Envoy address as "ip:port" or the socket path.
func hostAddress(a admin.AddressJSON) string {
	switch {
	case a.Pipe != nil:
		return "unix://" + a.Pipe.Path
	case a.SocketAddress != nil:
		sa := a.SocketAddress
		if strings.Contains(sa.Address, ":") {
			return "[" + sa.Address + "]:" + strconv.FormatUint(uint64(sa.PortValue), 10)
		}
		return sa.Address + ":" + strconv.FormatUint(uint64(sa.PortValue), 10)
	}
	return "-"
}

func localityOf(l *admin.LocalityJSON) string {
	if l == nil {
		return ""
	}
	return strings.TrimRight(l.Region+"/"+l.Zone+"/"+l.SubZone, "/")
}

func listenersTable(w io.Writer, bodies [][]byte) error {
	var ls admin.ListenersJSON
	if err := decode(bodies[0], "/listeners", &ls); err != nil {
		return err
	}
	fmt.Fprintln(w, "NAME\tADDRESS\tPORT")
	for _, l := range ls.ListenerStatuses {
		addr, port := "-", "-"
		if sa := l.LocalAddress.SocketAddress; sa != nil {
			addr, port = sa.Address, strconv.FormatUint(uint64(sa.PortValue), 10)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", l.Name, addr, port)
	}
	return nil
}

func routesTable(w io.Writer, bodies [][]byte) error {
	var rs admin.RoutesJSON
	if err := decode(bodies[0], "/routes", &rs); err != nil {
		return err
	}
	// As istioctl names route tables by port; every host matches all paths until VirtualServices.
	fmt.Fprintln(w, "NAME\tDOMAINS\tMATCH\tCLUSTER\tSERVICE ENTRY")
	for _, r := range rs.Routes {
		fmt.Fprintf(w, "%d\t%s\t/*\t%s\t%s\n", r.Port, r.Host, r.Cluster, r.ServiceEntry)
	}
	return nil
}

func registryTable(w io.Writer, bodies [][]byte) error {
	var reg admin.RegistryJSON
	if err := decode(bodies[0], "/registry", &reg); err != nil {
		return err
	}
	fmt.Fprintln(w, "HOST\tSERVICE ENTRY\tRESOLUTION\tLOCATION\tPORTS\tENDPOINTS\tEXPORT TO\tVISIBLE")
	for _, svc := range reg.Services {
		var ports []string
		eps := map[string]bool{}
		var epList []string
		for _, p := range svc.Ports {
			ports = append(ports, strconv.FormatUint(uint64(p.Number), 10)+"/"+dash(p.Protocol))
			for _, e := range p.Endpoints {
				a := e.Address
				if e.Port != 0 {
					a += ":" + strconv.FormatUint(uint64(e.Port), 10)
				}
				if !eps[a] {
					eps[a] = true
					epList = append(epList, a)
				}
			}
		}
		visible := "no"
		if svc.Visible {
			visible = "yes"
		}
		fmt.Fprintf(w, "%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", svc.Host, svc.Namespace, svc.Entry, svc.Resolution, svc.Location,
			strings.Join(ports, ","), dash(strings.Join(epList, ",")), dash(strings.Join(svc.ExportTo, ",")), visible)
	}
	return nil
}

// dash stands in for an empty cell, so columns stay aligned and readable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
