package gateway

import (
	"strconv"
	"strings"

	"github.com/meshentry/meshentry/internal/registry"
)

// AutoSNI is what an SNI of Istio's AUTO_PASSTHROUGH form names: the cluster
// outbound|PORT|SUBSET|HOST that the client's sidecar chose.
type AutoSNI struct {
	Port   uint32
	Subset string
	Host   string
}

// Cluster is the Envoy cluster the SNI names.
func (a AutoSNI) Cluster() string {
	return "outbound|" + strconv.FormatUint(uint64(a.Port), 10) + "|" + a.Subset + "|" + a.Host
}

// ParseAutoSNI reads "outbound_.PORT_.SUBSET_.HOST" (SUBSET empty for none, so "_._." follows
// the port), the SNI Istio's sidecars send through an AUTO_PASSTHROUGH gateway.
func ParseAutoSNI(sni string) (AutoSNI, bool) {
	rest, ok := strings.CutPrefix(sni, "outbound_.")
	if !ok {
		return AutoSNI{}, false
	}
	portS, rest, ok := strings.Cut(rest, "_.")
	if !ok {
		return AutoSNI{}, false
	}
	port, err := strconv.ParseUint(portS, 10, 16)
	if err != nil || port == 0 {
		return AutoSNI{}, false
	}
	subset, host, ok := strings.Cut(rest, "_.")
	if !ok {
		return AutoSNI{}, false
	}
	host = registry.NormalizeHost(host)
	if !registry.IsHostName(host) || strings.Contains(subset, ".") {
		return AutoSNI{}, false
	}
	return AutoSNI{Port: uint32(port), Subset: subset, Host: host}, true
}
