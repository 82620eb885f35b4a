package explain

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
)

// tlsModeLabel is the endpoint label Istio's auto mTLS looks for.
const tlsModeLabel = "security.istio.io/tlsMode"

// Policy is the DestinationRule that applies to the matched service port, with only what it sets.
type Policy struct {
	Rules []policy.Source `json:"rules,omitempty"`
	Host  string          `json:"host,omitempty"`
	Why   string          `json:"why"`
	TLS   *TLS            `json:"tls,omitempty"`
	// LoadBalancer, ConnectionPool and OutlierDetection are the effective settings as Istio
	// spells them in YAML, flattened to "field value" pairs.
	LoadBalancer     []string `json:"loadBalancer,omitempty"`
	ConnectionPool   []string `json:"connectionPool,omitempty"`
	OutlierDetection []string `json:"outlierDetection,omitempty"`
	Subsets          []string `json:"subsets,omitempty"`
}

// TLS is how the proxy would open the upstream connection and whom it expects to find there.
type TLS struct {
	Mode string `json:"mode"`
	SNI  string `json:"sni,omitempty"`
	// Identities are the subjectAltNames the server must present; IdentitiesFrom says whose.
	Identities     []string `json:"identities,omitempty"`
	IdentitiesFrom string   `json:"identitiesFrom,omitempty"`
	Files          []string `json:"files,omitempty"`
	Note           string   `json:"note,omitempty"`
}

// describePolicy finds the DestinationRule for the matched service port; nil when none applies and
// no automatic mTLS would either.
func describePolicy(idx *policy.Index, svc *registry.Service, p *registry.Port, req Request) *Policy {
	a, ok := idx.For(svc, p.Number, policy.Proxy{Namespace: req.Namespace, Labels: req.Labels})
	if !ok {
		tls := autoTLS(svc, p)
		if tls == nil {
			return nil
		}
		return &Policy{Why: "no DestinationRule applies", TLS: tls}
	}
	out := &Policy{Rules: a.Sources, Host: a.Host, Why: a.Why()}
	tp := a.Traffic
	if t := tp.GetTls(); t != nil {
		out.TLS = ruleTLS(t, svc, p)
	} else {
		out.TLS = autoTLS(svc, p)
	}
	out.LoadBalancer = flatten(tp.GetLoadBalancer())
	out.ConnectionPool = flatten(tp.GetConnectionPool())
	out.OutlierDetection = flatten(tp.GetOutlierDetection())
	for _, s := range a.Subsets {
		desc := s.Name
		if len(s.Labels) > 0 {
			desc += " (" + policy.LabelString(s.Labels) + ")"
		}
		if d := subsetDiff(tp, s.Traffic); d != "" {
			desc += " with " + d
		}
		out.Subsets = append(out.Subsets, desc)
	}
	return out
}

// subsetDiff names the parts of a subset's policy that differ from the port's, as "field: value".
func subsetDiff(top, sub *networking.TrafficPolicy) string {
	var parts []string
	for _, f := range []struct {
		name     string
		top, sub proto.Message
		nilTop   bool
		nilSub   bool
	}{
		{"tls", top.GetTls(), sub.GetTls(), top.GetTls() == nil, sub.GetTls() == nil},
		{"loadBalancer", top.GetLoadBalancer(), sub.GetLoadBalancer(), top.GetLoadBalancer() == nil, sub.GetLoadBalancer() == nil},
		{"connectionPool", top.GetConnectionPool(), sub.GetConnectionPool(), top.GetConnectionPool() == nil, sub.GetConnectionPool() == nil},
		{"outlierDetection", top.GetOutlierDetection(), sub.GetOutlierDetection(), top.GetOutlierDetection() == nil, sub.GetOutlierDetection() == nil},
	} {
		switch {
		case f.nilTop && f.nilSub:
		case f.nilSub:
			parts = append(parts, f.name+" default")
		case f.nilTop || !proto.Equal(f.top, f.sub):
			parts = append(parts, f.name+" "+strings.Join(flatten(f.sub), " "))
		}
	}
	return strings.Join(parts, "; ")
}

// ruleTLS describes tls a DestinationRule sets. SNI and identities for ISTIO_MUTUAL are Istio's:
// outbound_.PORT_._.HOST, and the ServiceEntry's subjectAltNames unless the rule sets its own.
func ruleTLS(t *networking.ClientTLSSettings, svc *registry.Service, p *registry.Port) *TLS {
	out := &TLS{Mode: t.Mode.String(), SNI: t.Sni, Identities: t.SubjectAltNames}
	if len(t.SubjectAltNames) > 0 {
		out.IdentitiesFrom = "DestinationRule"
	}
	for _, f := range []struct{ name, v string }{
		{"caCertificates", t.CaCertificates}, {"clientCertificate", t.ClientCertificate},
		{"privateKey", t.PrivateKey}, {"credentialName", t.CredentialName},
	} {
		if f.v != "" {
			out.Files = append(out.Files, f.name+" "+f.v)
		}
	}
	switch t.Mode {
	case networking.ClientTLSSettings_DISABLE:
		out.SNI, out.Identities, out.IdentitiesFrom = "", nil, ""
		out.Note = "plaintext to the endpoints"
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		istioIdentity(out, svc, p)
	default:
		simpleOrMutual(out, t, p)
	}
	return out
}

// simpleOrMutual says what SIMPLE and MUTUAL verify. With no sni, Istio's auto SNI sends the HTTP
// Host, and its auto SAN validation checks the certificate against it; opaque TCP sends no SNI.
func simpleOrMutual(out *TLS, t *networking.ClientTLSSettings, p *registry.Port) {
	autoSNI := false
	if out.SNI == "" && (p.Family == registry.FamilyHTTP || p.Family == registry.FamilyAuto) {
		out.SNI, autoSNI = "(the request's Host, Istio's auto SNI)", true
	}
	var notes []string
	switch {
	case t.GetInsecureSkipVerify().GetValue():
		notes = append(notes, "insecureSkipVerify: the server certificate is not verified")
	case t.CaCertificates == "" && t.CredentialName == "":
		notes = append(notes, "no caCertificates: verified against the system roots")
	}
	if len(out.Identities) == 0 && !t.GetInsecureSkipVerify().GetValue() {
		if autoSNI {
			notes = append(notes, "no subjectAltNames: the certificate must be valid for the requested host")
		} else {
			notes = append(notes, "no subjectAltNames: any certificate the CA trusts")
		}
	}
	out.Note = strings.Join(notes, "; ")
}

// istioIdentity fills SNI and expected identities as Istio's ISTIO_MUTUAL does.
func istioIdentity(out *TLS, svc *registry.Service, p *registry.Port) {
	if out.SNI == "" {
		out.SNI = "outbound_." + strconv.FormatUint(uint64(p.Number), 10) + "_._." + svc.Host
	}
	switch {
	case len(out.Identities) > 0:
	case len(svc.SubjectAltNames) > 0:
		out.Identities, out.IdentitiesFrom = svc.SubjectAltNames, "ServiceEntry"
	default:
		out.Note = "no subjectAltNames declared: any identity of the trust domain"
	}
}

// autoTLS is Istio's auto mTLS: with no tls from a DestinationRule, MESH_INTERNAL endpoints
// labelled security.istio.io/tlsMode=istio get ISTIO_MUTUAL; nil when no endpoint is.
func autoTLS(svc *registry.Service, p *registry.Port) *TLS {
	if !svc.MeshInternal {
		return nil
	}
	n := 0
	for _, ep := range p.Endpoints {
		if ep.Labels[tlsModeLabel] == "istio" {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := &TLS{Mode: "ISTIO_MUTUAL"}
	istioIdentity(out, svc, p)
	auto := fmt.Sprintf("auto mTLS: %d of %d endpoints are labelled %s=istio; the others get plaintext", n, len(p.Endpoints), tlsModeLabel)
	if out.Note != "" {
		auto += "; " + out.Note
	}
	out.Note = auto
	return out
}

// flatten writes the fields a message sets as "path value" pairs in Istio's YAML spelling.
func flatten(m proto.Message) []string {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil
	}
	raw, err := protojson.Marshal(m)
	if err != nil {
		return []string{"(cannot show: " + err.Error() + ")"}
	}
	var tree map[string]any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return []string{"(cannot show: " + err.Error() + ")"}
	}
	var out []string
	walk("", tree, &out)
	return out
}

func walk(prefix string, v any, out *[]string) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, t[k], out)
		}
	case []any:
		for i, e := range t {
			walk(prefix+"["+strconv.Itoa(i)+"]", e, out)
		}
	default:
		b, _ := json.Marshal(t)
		*out = append(*out, prefix+" "+strings.Trim(string(b), `"`))
	}
}

// writeText prints the policy lines of the text report.
func (p *Policy) writeText(w io.Writer) {
	if len(p.Rules) == 0 {
		fmt.Fprintln(w, "destinationRule: none applies")
	} else {
		names := make([]string, len(p.Rules))
		for i, r := range p.Rules {
			names[i] = r.String()
		}
		fmt.Fprintf(w, "destinationRule: %s\n", strings.Join(names, ", "))
		fmt.Fprintf(w, "  why:        %s\n", p.Why)
	}
	if t := p.TLS; t != nil {
		line := t.Mode
		if t.SNI != "" {
			line += ", sni " + t.SNI
		}
		if len(t.Identities) > 0 {
			line += ", expects " + strings.Join(t.Identities, " or ") + " (subjectAltNames of the " + t.IdentitiesFrom + ")"
		}
		if len(t.Files) > 0 {
			line += ", " + strings.Join(t.Files, ", ")
		}
		if t.Note != "" {
			line += "; " + t.Note
		}
		fmt.Fprintf(w, "  tls:        %s\n", line)
	}
	for _, s := range []struct {
		label string
		v     []string
	}{{"  loadBalancer: ", p.LoadBalancer}, {"  connectionPool: ", p.ConnectionPool}, {"  outlierDetection: ", p.OutlierDetection}, {"  subsets:    ", p.Subsets}} {
		if len(s.v) > 0 {
			fmt.Fprintf(w, "%s%s\n", s.label, strings.Join(s.v, ", "))
		}
	}
}
