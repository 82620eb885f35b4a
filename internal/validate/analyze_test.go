package validate

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

// analyzeCase is one row of an analysis table: documents in YAML, the findings expected on them
// ("doc-name CODE field"), and text the messages must carry.
type analyzeCase struct {
	name     string
	yaml     string
	want     []string
	contains []string
}

// se writes a ServiceEntry document; extra is YAML under spec, after hosts.
func se(name, ns, created, hosts, extra string) string {
	meta := fmt.Sprintf("  name: %s\n  namespace: %s\n", name, ns)
	if created != "" {
		meta += "  creationTimestamp: \"" + created + "\"\n"
	}
	spec := "  hosts: [" + hosts + "]\n"
	for _, l := range strings.Split(strings.Trim(extra, "\n"), "\n") {
		if l != "" {
			spec += "  " + l + "\n"
		}
	}
	return "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n" + meta + "spec:\n" + spec
}

// other writes a document of another kind with the given spec lines.
func other(kind, name, ns, spec string) string {
	out := fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: %s\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n", kind, name, ns)
	for _, l := range strings.Split(strings.Trim(spec, "\n"), "\n") {
		out += "  " + l + "\n"
	}
	return out
}

func analyzeYAML(t *testing.T, yaml string) []diag.Diagnostic {
	t.Helper()
	order := 0
	docs, loadDiags := config.Decode("a.yaml", strings.NewReader(yaml), "default", &order)
	if len(loadDiags) > 0 {
		t.Fatalf("documents do not load: %s", messages(loadDiags))
	}
	ok, ds := Documents(docs)
	if errs, _, _ := diag.Split(ds); len(errs) > 0 {
		t.Fatalf("documents do not validate: %s", messages(errs))
	}
	return Analyze(ok)
}

func runAnalyze(t *testing.T, cases []analyzeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ds := analyzeYAML(t, tc.yaml)
			var got []string
			for _, d := range ds {
				got = append(got, d.Name+" "+d.Code+" "+d.Field)
				if d.Level != diag.Warning {
					t.Errorf("analysis finding is not a warning: %s", d)
				}
			}
			sort.Strings(got)
			want := append([]string(nil), tc.want...)
			sort.Strings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("findings differ\ngot:\n  %s\nwant:\n  %s\nmessages:\n%s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), messages(ds))
			}
			all := messages(ds)
			for _, s := range tc.contains {
				if !strings.Contains(all, s) {
					t.Errorf("messages do not mention %q:\n%s", s, all)
				}
			}
		})
	}
}

func TestAnalyzeTCPPortClash(t *testing.T) {
	tcp := "ports: [{number: 3306, name: mysql, protocol: TCP}]\nresolution: DNS"
	cases := []analyzeCase{
		{
			name:     "says the older of two address-less TCP entries wins the port, and why",
			yaml:     se("db-b", "ns", "2024-05-01T00:00:00Z", "b.example.com", tcp) + se("db-a", "ns", "2024-01-01T00:00:00Z", "a.example.com", tcp),
			want:     []string{"db-b ME2001 spec.ports[0].number"},
			contains: []string{"goes to ns/db-a because it was created first (creationTimestamp 2024-01-01T00:00:00Z, this one 2024-05-01T00:00:00Z)", "where both are visible (every namespace)"},
		},
		{
			name:     "falls back to load order when neither sets a creationTimestamp",
			yaml:     se("db-a", "ns", "", "a.example.com", tcp) + se("db-b", "ns", "", "b.example.com", tcp),
			want:     []string{"db-b ME2001 spec.ports[0].number"},
			contains: []string{"the one loaded first wins (a.yaml:2 before a.yaml:12)"},
		},
		{
			name:     "prefers an entry with a creationTimestamp over one without",
			yaml:     se("db-a", "ns", "", "a.example.com", tcp) + se("db-b", "ns", "2024-01-01T00:00:00Z", "b.example.com", tcp),
			want:     []string{"db-a ME2001 spec.ports[0].number"},
			contains: []string{"goes to ns/db-b because it has a creationTimestamp"},
		},
		{
			name:     "treats protocol-less and MySQL ports as TCP",
			yaml:     se("db-a", "ns", "", "a.example.com", "ports: [{number: 3306, name: db}]\nresolution: DNS") + se("db-b", "ns", "", "b.example.com", "ports: [{number: 3306, name: db, protocol: MYSQL}]\nresolution: DNS"),
			want:     []string{"db-b ME2001 spec.ports[0].number"},
			contains: []string{"port 3306 (MYSQL)"},
		},
		{
			name:     "names the one namespace that sees both entries",
			yaml:     se("db-a", "team-a", "", "a.example.com", tcp+"\nexportTo: [\".\", team-b]") + se("db-b", "team-b", "", "b.example.com", tcp+"\nexportTo: [\".\"]"),
			want:     []string{"db-b ME2001 spec.ports[0].number"},
			contains: []string{`where both are visible (namespace "team-b")`},
		},
		{
			name: "ignores entries that no namespace sees together",
			yaml: se("db-a", "team-a", "", "a.example.com", tcp+"\nexportTo: [\".\"]") + se("db-b", "team-b", "", "b.example.com", tcp+"\nexportTo: [\".\"]"),
		},
		{
			name: "ignores an entry with addresses, which is matched by destination IP",
			yaml: se("db-a", "ns", "", "a.example.com", tcp) + se("db-b", "ns", "", "b.example.com", "addresses: [10.0.0.9]\n"+tcp),
		},
		{
			name: "ignores HTTP and TLS ports, which are routed by name",
			yaml: se("a", "ns", "", "a.example.com", "ports: [{number: 443, name: tls, protocol: TLS}]\nresolution: DNS") +
				se("b", "ns", "", "b.example.com", "ports: [{number: 443, name: https, protocol: HTTPS}]\nresolution: DNS") +
				se("c", "ns", "", "c.example.com", "ports: [{number: 443, name: http, protocol: HTTP}]\nresolution: DNS"),
		},
		{
			name: "ignores an entry exported to nobody",
			yaml: se("db-a", "ns", "", "a.example.com", tcp) + se("db-b", "ns", "", "b.example.com", tcp+"\nexportTo: [\"~\"]"),
		},
	}
	runAnalyze(t, cases)
}

func TestAnalyzeOpenNonePorts(t *testing.T) {
	cases := []analyzeCase{
		{
			name:     "warns that NONE on a TCP port without addresses lets any IP through",
			yaml:     se("any-db", "ns", "", "db.example.com", "ports: [{number: 5432, name: pg, protocol: TCP}]\nresolution: NONE"),
			want:     []string{"any-db ME2002 spec.ports[0].number"},
			contains: []string{"0.0.0.0:5432"},
		},
		{
			name: "does not warn about NONE on HTTP or TLS ports",
			yaml: se("web", "ns", "", "\"*.example.com\"", "ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]\nresolution: NONE"),
		},
		{
			name: "does not warn about NONE with addresses",
			yaml: se("db", "ns", "", "db.example.com", "addresses: [10.1.0.0/16]\nports: [{number: 5432, name: pg, protocol: TCP}]\nresolution: NONE"),
		},
	}
	runAnalyze(t, cases)
}

func TestAnalyzeHostInSeveralNamespaces(t *testing.T) {
	http := "ports: [{number: 80, name: http, protocol: HTTP}]\nresolution: DNS"
	cases := []analyzeCase{
		{
			name:     "warns on each entry when two namespaces declare a host everyone sees",
			yaml:     se("api", "team-a", "", "api.example.com", http) + se("api", "team-b", "", "api.example.com", http),
			want:     []string{"api ME2003 spec.hosts[0]", "api ME2003 spec.hosts[0]"},
			contains: []string{"also declared by team-b/api", "also declared by team-a/api", "else the oldest (team-a/api)"},
		},
		{
			name: "matches hosts case-insensitively and ignores a trailing dot",
			yaml: se("a", "team-a", "", "API.example.com.", http) + se("b", "team-b", "", "api.example.com", http),
			want: []string{"a ME2003 spec.hosts[0]", "b ME2003 spec.hosts[0]"},
		},
		{
			name: "ignores a host declared in namespaces that export only to themselves",
			yaml: se("api", "team-a", "", "api.example.com", http+"\nexportTo: [\".\"]") + se("api", "team-b", "", "api.example.com", http+"\nexportTo: [\".\"]"),
		},
		{
			name: "leaves a host declared twice in one namespace to ME2007",
			yaml: se("a", "ns", "", "api.example.com", http) + se("b", "ns", "", "api.example.com", http),
			want: []string{"b ME2007 spec.hosts[0]"},
		},
	}
	runAnalyze(t, cases)
}

func TestAnalyzeUndeclaredHosts(t *testing.T) {
	http := "ports: [{number: 80, name: http, protocol: HTTP}]\nresolution: DNS"
	cases := []analyzeCase{
		{
			name:     "refuses a DestinationRule host that no ServiceEntry declares",
			yaml:     se("api", "ns", "", "api.example.com", http) + other("DestinationRule", "dr", "ns", "host: other.example.com"),
			want:     []string{"dr IST0174 spec.host"},
			contains: []string{`no ServiceEntry visible to namespace "ns" declares host "other.example.com"`},
		},
		{
			name: "accepts a host that a wildcard ServiceEntry host covers",
			yaml: se("wild", "ns", "", "\"*.example.com\"", "ports: [{number: 80, name: http, protocol: HTTP}]\nresolution: NONE") +
				other("DestinationRule", "dr", "ns", "host: api.example.com"),
		},
		{
			name: "accepts a wildcard DestinationRule host that covers a ServiceEntry host",
			yaml: se("api", "ns", "", "api.example.com", http) + other("DestinationRule", "dr", "ns", "host: \"*.example.com\""),
		},
		{
			name: "does not let a wildcard cover its own parent domain",
			yaml: se("wild", "ns", "", "\"*.example.com\"", "ports: [{number: 80, name: http, protocol: HTTP}]\nresolution: NONE") +
				other("DestinationRule", "dr", "ns", "host: example.com"),
			want: []string{"dr IST0174 spec.host"},
		},
		{
			name:     "explains a short name as the Kubernetes Service it means",
			yaml:     other("DestinationRule", "dr", "shop", "host: reviews"),
			want:     []string{"dr IST0174 spec.host"},
			contains: []string{`short name "reviews" means reviews.shop.svc.cluster.local, a Kubernetes Service`, "no Kubernetes source yet"},
		},
		{
			name: "finds a short name declared by a ServiceEntry under its Kubernetes name",
			yaml: se("reviews", "shop", "", "reviews.shop.svc.cluster.local", http) + other("DestinationRule", "dr", "shop", "host: reviews"),
		},
		{
			name:     "says which entry declares a host that is not exported to the namespace",
			yaml:     se("api", "team-a", "", "api.example.com", http+"\nexportTo: [\".\"]") + other("DestinationRule", "dr", "team-b", "host: api.example.com"),
			want:     []string{"dr IST0174 spec.host"},
			contains: []string{`declared by team-a/api (a.yaml:`, `does not include namespace "team-b"`},
		},
		{
			name: "checks mesh VirtualService hosts and every kind of route destination",
			yaml: se("api", "ns", "", "api.example.com", http) + other("VirtualService", "vs", "ns", `hosts: [api.example.com, x.example.com, "*", 10.0.0.1]
http:
- route: [{destination: {host: api.example.com}, weight: 50}, {destination: {host: y.example.com}, weight: 50}]
  mirrors: [{destination: {host: n.example.com}}]
- route: [{destination: {host: api.example.com}}]
  mirror: {host: m.example.com}
tcp: [{route: [{destination: {host: t.example.com}}]}]
tls: [{match: [{sniHosts: [api.example.com]}], route: [{destination: {host: s.example.com}}]}]`),
			want: []string{
				"vs ME2004 spec.hosts[1]",
				"vs IST0101 spec.http[0].route[1].destination.host",
				"vs IST0101 spec.http[1].mirror.host",
				"vs IST0101 spec.http[0].mirrors[0].destination.host",
				"vs IST0101 spec.tcp[0].route[0].destination.host",
				"vs IST0101 spec.tls[0].route[0].destination.host",
			},
		},
		{
			name: "leaves the hosts of a VirtualService bound only to gateways alone",
			yaml: se("api", "ns", "", "api.example.com", http) + other("Gateway", "ingress", "ns", "servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*/*\"]}]") +
				other("VirtualService", "vs", "ns", "hosts: [shop.example.com]\ngateways: [ingress]\nhttp: [{route: [{destination: {host: api.example.com}}]}]"),
		},
		{
			name:     "names the Kubernetes Service behind a svc.cluster.local destination",
			yaml:     other("Gateway", "egress", "ns", "servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*/*\"]}]") + other("VirtualService", "vs", "ns", "hosts: [\"*\"]\ngateways: [egress]\nhttp: [{route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local}}]}]"),
			want:     []string{"vs IST0101 spec.http[0].route[0].destination.host"},
			contains: []string{`host "istio-egressgateway.istio-system.svc.cluster.local" names a Kubernetes Service`},
		},
		{
			name: "warns about a Gateway host that no ServiceEntry declares, skipping wildcards",
			yaml: se("api", "istio-system", "", "api.example.com", http) + other("Gateway", "egress", "istio-system",
				"servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\", api.example.com, \"*/*\", ns1/other.example.com]}]"),
			want:     []string{"egress ME2005 spec.servers[0].hosts[3]"},
			contains: []string{"an egress gateway needs a ServiceEntry"},
		},
	}
	runAnalyze(t, cases)
}

func TestHostsOverlap(t *testing.T) {
	cases := []struct {
		name string
		a, b string
		want bool
	}{
		{name: "matches equal hosts", a: "a.example.com", b: "a.example.com", want: true},
		{name: "matches regardless of case and a trailing dot", a: "A.Example.com.", b: "a.example.com", want: true},
		{name: "matches a subdomain to a wildcard", a: "*.example.com", b: "a.b.example.com", want: true},
		{name: "does not match the wildcard's own domain", a: "*.example.com", b: "example.com", want: false},
		{name: "matches nested wildcards", a: "*.example.com", b: "*.b.example.com", want: true},
		{name: "matches anything to \"*\"", a: "*", b: "a.example.com", want: true},
		{name: "does not match different hosts", a: "a.example.com", b: "b.example.com", want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := hostsOverlap(tc.a, tc.b); got != tc.want {
				t.Errorf("hostsOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := hostsOverlap(tc.b, tc.a); got != tc.want {
				t.Errorf("hostsOverlap(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
			}
		})
	}
}

func TestAnalyzeWarnsThatSidecarsAreNotAppliedYet(t *testing.T) {
	t.Parallel()
	order := 0
	docs, diags := config.Decode("sc.yaml", strings.NewReader("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc, namespace: team}\nspec:\n  egress:\n  - hosts: [\"./*\"]\n"), "default", &order)
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	found := Analyze(docs)
	if len(found) != 1 || found[0].Code != CodeNotAppliedYet || found[0].Line != 5 || !strings.Contains(found[0].Message, `"team"`) {
		t.Fatalf("findings = %v, want one %s at line 5 naming the namespace", found, CodeNotAppliedYet)
	}
}

func TestAnalyzeConflictingProtocols(t *testing.T) {
	port := func(proto string) string {
		return "ports: [{number: 13835, name: p, protocol: " + proto + "}]\nresolution: DNS"
	}
	cases := []analyzeCase{
		{
			name:     "reports each entry of a host and port declared HTTP and HTTPS, as IST0177",
			yaml:     se("https", "a", "", "example.com", port("HTTPS")) + se("http", "b", "", "example.com", port("HTTP")),
			want:     []string{"http IST0177 spec.ports[0].protocol", "https IST0177 spec.ports[0].protocol", "http ME2003 spec.hosts[0]", "https ME2003 spec.hosts[0]"},
			contains: []string{`host "example.com" port 13835 is declared HTTPS here and differently by b/http (HTTP, a.yaml:`, "(HTTP or HTTPS)"},
		},
		{
			name: "compares protocols case-insensitively",
			yaml: se("upper", "a", "", "example.com", port("HTTP")) + se("lower", "a", "", "example.com", port("http")),
			want: []string{"lower ME2007 spec.hosts[0]"},
		},
		{
			name: "ignores entries no namespace sees together",
			yaml: se("one", "a", "", "example.com", port("TCP")+"\nexportTo: [.]") + se("two", "b", "", "example.com", port("HTTP")+"\nexportTo: [.]"),
		},
		{
			name: "reports entries exported to a namespace they share",
			yaml: se("one", "a", "", "example.com", port("TCP")+"\nexportTo: [., c]") + se("two", "b", "", "example.com", port("HTTP")+"\nexportTo: [c]"),
			want: []string{"one IST0177 spec.ports[0].protocol", "two IST0177 spec.ports[0].protocol", "one ME2003 spec.hosts[0]", "two ME2003 spec.hosts[0]"},
		},
		{
			name: "ignores the same host on different ports",
			yaml: se("one", "a", "", "example.com", "ports: [{number: 80, name: http, protocol: HTTP}]\nresolution: DNS") + se("two", "b", "", "example.com", port("TLS")),
			want: []string{"one ME2003 spec.hosts[0]", "two ME2003 spec.hosts[0]"},
		},
	}
	runAnalyze(t, cases)
}

func TestAnalyzeHostTwiceInOneNamespace(t *testing.T) {
	http := "ports: [{number: 80, name: http, protocol: HTTP}]\nresolution: DNS"
	cases := []analyzeCase{
		{
			name:     "reports the younger of two entries sharing a host and port, naming the winner",
			yaml:     se("old", "ns", "2024-01-01T00:00:00Z", "api.example.com", http) + se("new", "ns", "", "api.example.com", http),
			want:     []string{"new ME2007 spec.hosts[0]"},
			contains: []string{"on the ports both declare (80) ns/old gets the traffic because it has a creationTimestamp"},
		},
		{
			name:     "reports entries that share the host but no port",
			yaml:     se("a", "ns", "", "api.example.com", http) + se("b", "ns", "", "API.example.com.", "ports: [{number: 443, name: tls, protocol: TLS}]\nresolution: DNS"),
			want:     []string{"b ME2007 spec.hosts[0]"},
			contains: []string{"they share no port"},
		},
		{
			name: "ignores one entry listing a host once",
			yaml: se("a", "ns", "", "api.example.com, www.example.com", http),
		},
	}
	runAnalyze(t, cases)
}
