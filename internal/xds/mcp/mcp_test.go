package mcp

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	mcpapi "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// snapshotOf compiles YAML as `run -f` would and fails the test on any error.
func snapshotOf(t *testing.T, yaml string) *registry.Snapshot {
	t.Helper()
	order := 0
	docs, diags := config.Decode("test.yaml", strings.NewReader(yaml), "default", &order)
	res := compile.Documents(config.Result{Documents: docs, Diagnostics: diags, Read: len(docs)}, 1)
	if res.Errors() > 0 {
		t.Fatalf("test config has errors: %v", res.Diagnostics)
	}
	return res.Snapshot
}

const fiveKinds = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop, labels: {team: a}, creationTimestamp: "2026-01-02T03:04:05Z"}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec: {host: api.example.com, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec: {hosts: [api.example.com], http: [{route: [{destination: {host: api.example.com}}]}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: shop}
spec: {selector: {istio: egressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec: {egress: [{hosts: ["./*"]}]}
`

func TestResourcesCarryEveryDocumentAsIstiodServesIt(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(t, fiveKinds)
	byType := Resources(snap)
	for _, u := range TypeURLs {
		t.Run("serves one "+KindOf(u)+" named namespace/name that decodes back to the same spec", func(t *testing.T) {
			rs := byType[u]
			if len(rs) != 1 {
				t.Fatalf("%d resources, want 1", len(rs))
			}
			r := rs[0].(*mcpapi.Resource)
			if r.GetBody().GetTypeUrl() != "type.googleapis.com/istio.networking.v1alpha3."+KindOf(u) {
				t.Errorf("body type %s", r.GetBody().GetTypeUrl())
			}
			if len(r.GetMetadata().GetVersion()) != 16 {
				t.Errorf("version %q is not a content hash", r.GetMetadata().GetVersion())
			}
			a, err := anypb.New(r)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := Document(u, "xds://test", a, "default")
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			var orig *config.Document
			for _, d := range snap.Documents {
				if d.Kind == KindOf(u) {
					orig = d
				}
			}
			if doc.Namespace+"/"+doc.Name != r.GetMetadata().GetName() || doc.Namespace != orig.Namespace || doc.Name != orig.Name {
				t.Errorf("decoded %s/%s from %q, want %s/%s", doc.Namespace, doc.Name, r.GetMetadata().GetName(), orig.Namespace, orig.Name)
			}
			if !proto.Equal(doc.Spec, orig.Spec) {
				t.Errorf("spec changed on the way:\n got %v\nwant %v", doc.Spec, orig.Spec)
			}
			if !doc.Created.Equal(orig.Created) || len(doc.Labels) != len(orig.Labels) {
				t.Errorf("metadata lost: created %v labels %v, want %v %v", doc.Created, doc.Labels, orig.Created, orig.Labels)
			}
		})
	}
}

func TestVersionsFollowContent(t *testing.T) {
	t.Parallel()
	a := Resources(snapshotOf(t, fiveKinds))
	b := Resources(snapshotOf(t, fiveKinds))
	changed := Resources(snapshotOf(t, strings.Replace(fiveKinds, "address: 127.0.0.1", "address: 127.0.0.2", 1)))
	t.Run("keeps a version while the document is unchanged", func(t *testing.T) {
		for _, u := range TypeURLs {
			if VersionOf(a[u][0]) != VersionOf(b[u][0]) {
				t.Errorf("%s: %s then %s", u, VersionOf(a[u][0]), VersionOf(b[u][0]))
			}
		}
	})
	t.Run("changes the version of the changed document only", func(t *testing.T) {
		for _, u := range TypeURLs {
			same := VersionOf(a[u][0]) == VersionOf(changed[u][0])
			if same == (u == ServiceEntryType) {
				t.Errorf("%s: version same=%v after editing the ServiceEntry", u, same)
			}
		}
	})
}

func TestDocumentRefusesWhatStrictDecodingRefuses(t *testing.T) {
	t.Parallel()
	se := &networking.ServiceEntry{Hosts: []string{"a.example.com"}}
	body, _ := anypb.New(se)
	withUnknown := proto.Clone(body).(*anypb.Any)
	withUnknown.Value = append(withUnknown.Value, 0xf8, 0x3e, 0x01) // field 999, varint 1
	nested := &networking.ServiceEntry{Ports: []*networking.ServicePort{{Number: 80, Name: "http"}}}
	nested.Ports[0].ProtoReflect().SetUnknown([]byte{0xf8, 0x3e, 0x01})
	nestedBody, _ := anypb.New(nested)
	wrongBody, _ := anypb.New(&networking.DestinationRule{Host: "a"})
	notMCP, _ := anypb.New(structpb.NewStringValue("x"))
	wrap := func(name string, b *anypb.Any) *anypb.Any {
		a, _ := anypb.New(&mcpapi.Resource{Metadata: &mcpapi.Metadata{Name: name}, Body: b})
		return a
	}
	for _, tc := range []struct {
		name string
		in   *anypb.Any
		want string
	}{
		{name: "refuses a spec field the schema does not know", in: wrap("ns/a", withUnknown), want: "spec: field unknown"},
		{name: "refuses an unknown field deep in the spec, naming its path", in: wrap("ns/a", nestedBody), want: "spec.ports[0]: field unknown"},
		{name: "refuses a body of another kind", in: wrap("ns/a", wrongBody), want: "body"},
		{name: "refuses a resource that is not an MCP resource", in: notMCP, want: "not an MCP resource"},
		{name: "refuses a resource without a body", in: wrap("ns/a", nil), want: "no body"},
		{name: "refuses an empty name", in: wrap("", body), want: "metadata.name: empty"},
		{name: "refuses a name with two slashes", in: wrap("a/b/c", body), want: "not namespace/name"},
		{name: "refuses a name with an empty namespace", in: wrap("/a", body), want: "not namespace/name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Document(ServiceEntryType, "xds://x/se/0", tc.in, "default")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "xds://x/se/0") {
				t.Errorf("err %q does not name its source", err)
			}
		})
	}
	t.Run("gives a name without a namespace the default one", func(t *testing.T) {
		doc, err := Document(ServiceEntryType, "xds://x", wrap("a", body), "fallback")
		if err != nil || doc.Namespace != "fallback" || doc.Name != "a" {
			t.Fatalf("got %+v, %v", doc, err)
		}
	})
}

func FuzzDocument(f *testing.F) {
	body, _ := anypb.New(&networking.ServiceEntry{Hosts: []string{"a.example.com"}})
	good, _ := proto.Marshal(&mcpapi.Resource{Metadata: &mcpapi.Metadata{Name: "ns/a"}, Body: body})
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, u := range TypeURLs {
			doc, err := Document(u, "fuzz", &anypb.Any{TypeUrl: "type.googleapis.com/istio.mcp.v1alpha1.Resource", Value: b}, "default")
			if err == nil && (doc.Spec == nil || doc.Name == "" || doc.Namespace == "") {
				t.Fatalf("accepted a document without spec or name: %+v", doc)
			}
		}
	})
}
