package envoy

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestParseNode(t *testing.T) {
	t.Parallel()
	md, _ := structpb.NewStruct(map[string]any{"GENERATOR": "grpc", "LABELS": map[string]any{"app": "web"}, "NETWORK": "n1"})
	tests := []struct {
		name string
		node *core.Node
		want Node
	}{
		{name: "an Istio sidecar id gives name, namespace and IP",
			node: &core.Node{Id: "sidecar~10.1.2.3~web-1.shop~shop.svc.cluster.local"},
			want: Node{IP: "10.1.2.3", Name: "web-1", Namespace: "shop"}},
		{name: "metadata gives labels, generator, network and the locality",
			node: &core.Node{Id: "sidecar~10.1.2.3~web-1.shop~shop.svc.cluster.local", Metadata: md, Locality: &core.Locality{Region: "r", Zone: "z"}},
			want: Node{IP: "10.1.2.3", Name: "web-1", Namespace: "shop", Generator: "grpc", Network: "n1", Locality: "r/z", Labels: map[string]string{"app": "web"}}},
		{name: "a plain id is the name, in namespace default",
			node: &core.Node{Id: "envoy-1"},
			want: Node{Name: "envoy-1", Namespace: "default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ParseNode(tt.node)
			tt.want.ID = tt.node.Id
			if got.IP != tt.want.IP || got.Name != tt.want.Name || got.Namespace != tt.want.Namespace || got.Generator != tt.want.Generator ||
				got.Network != tt.want.Network || got.Locality != tt.want.Locality || len(got.Labels) != len(tt.want.Labels) || got.Labels["app"] != tt.want.Labels["app"] {
				t.Fatalf("ParseNode = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseNode(f *testing.F) {
	f.Add("sidecar~10.1.2.3~web-1.shop~shop.svc.cluster.local", "r/z/s")
	f.Add("~~~", "")
	f.Fuzz(func(t *testing.T, id, locality string) {
		n := ParseNode(&core.Node{Id: id, Locality: ParseLocality(locality)})
		if n.Namespace == "" {
			t.Fatalf("ParseNode(%q) gave no namespace", id)
		}
	})
}
