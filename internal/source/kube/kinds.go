package kube

import (
	"context"
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"
	analysis "istio.io/api/analysis/v1alpha1"
	clientnet "istio.io/client-go/pkg/apis/networking/v1"
	"istio.io/client-go/pkg/clientset/versioned"
	informers "istio.io/client-go/pkg/informers/externalversions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/meshentry/meshentry/internal/config"
)

// Group and Version name the API the source watches; the API server converts v1beta1 and v1alpha3
// objects to it, so one watch per kind sees them all.
const (
	Group   = "networking.istio.io"
	Version = "v1"
)

// kind is one of the five networking.istio.io kinds meshentry reads.
type kind struct {
	name     string // as config.Document.Kind says it
	resource string // the plural the API server and RBAC name
	informer func(informers.SharedInformerFactory) cache.SharedIndexInformer
	patch    func(ctx context.Context, c versioned.Interface, ns, name string, data []byte, opts metav1.PatchOptions) error
}

// kinds lists the watched kinds in the order documents are handed on.
var kinds = []kind{
	{config.KindServiceEntry, "serviceentries",
		func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Networking().V1().ServiceEntries().Informer()
		},
		func(ctx context.Context, c versioned.Interface, ns, name string, data []byte, opts metav1.PatchOptions) error {
			_, err := c.NetworkingV1().ServiceEntries(ns).Patch(ctx, name, types.MergePatchType, data, opts, "status")
			return err
		}},
	{config.KindDestinationRule, "destinationrules",
		func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Networking().V1().DestinationRules().Informer()
		},
		func(ctx context.Context, c versioned.Interface, ns, name string, data []byte, opts metav1.PatchOptions) error {
			_, err := c.NetworkingV1().DestinationRules(ns).Patch(ctx, name, types.MergePatchType, data, opts, "status")
			return err
		}},
	{config.KindVirtualService, "virtualservices",
		func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Networking().V1().VirtualServices().Informer()
		},
		func(ctx context.Context, c versioned.Interface, ns, name string, data []byte, opts metav1.PatchOptions) error {
			_, err := c.NetworkingV1().VirtualServices(ns).Patch(ctx, name, types.MergePatchType, data, opts, "status")
			return err
		}},
	{config.KindGateway, "gateways",
		func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Networking().V1().Gateways().Informer()
		},
		func(ctx context.Context, c versioned.Interface, ns, name string, data []byte, opts metav1.PatchOptions) error {
			_, err := c.NetworkingV1().Gateways(ns).Patch(ctx, name, types.MergePatchType, data, opts, "status")
			return err
		}},
	{config.KindSidecar, "sidecars",
		func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Networking().V1().Sidecars().Informer()
		},
		func(ctx context.Context, c versioned.Interface, ns, name string, data []byte, opts metav1.PatchOptions) error {
			_, err := c.NetworkingV1().Sidecars(ns).Patch(ctx, name, types.MergePatchType, data, opts, "status")
			return err
		}},
}

// kindNamed returns the kind called name, or nil.
func kindNamed(name string) *kind {
	for i := range kinds {
		if kinds[i].name == name {
			return &kinds[i]
		}
	}
	return nil
}

// statusView is what the status types of all five kinds let meshentry read back.
type statusView interface {
	GetValidationMessages() []*analysis.AnalysisMessageBase
	GetObservedGeneration() int64
}

// object is one cached API object as meshentry sees it.
type object struct {
	kind   string
	meta   *metav1.ObjectMeta
	spec   proto.Message
	status statusView
}

// objectOf unpacks an informer's object; ok is false for anything else (a tombstone, say).
func objectOf(obj any) (o object, ok bool) {
	switch v := obj.(type) {
	case *clientnet.ServiceEntry:
		return object{config.KindServiceEntry, &v.ObjectMeta, &v.Spec, &v.Status}, true
	case *clientnet.DestinationRule:
		return object{config.KindDestinationRule, &v.ObjectMeta, &v.Spec, &v.Status}, true
	case *clientnet.VirtualService:
		return object{config.KindVirtualService, &v.ObjectMeta, &v.Spec, &v.Status}, true
	case *clientnet.Gateway:
		return object{config.KindGateway, &v.ObjectMeta, &v.Spec, &v.Status}, true
	case *clientnet.Sidecar:
		return object{config.KindSidecar, &v.ObjectMeta, &v.Spec, &v.Status}, true
	}
	return object{}, false
}

// Position is the stand-in for file:line that documents from the API server carry, and that
// findings about them print: kube://NAMESPACE/KIND/NAME.
func Position(namespace, kind, name string) string {
	return fmt.Sprintf("kube://%s/%s/%s", namespace, kind, name)
}

// document turns a cached object into the config.Document the compile path reads. The spec is
// cloned: the informer's cache is shared and later stages must be free to hold on to what they get.
func (o object) document() *config.Document {
	return &config.Document{
		File:       Position(o.meta.Namespace, o.kind, o.meta.Name),
		APIVersion: Group + "/" + Version,
		Kind:       o.kind,
		Name:       o.meta.Name,
		Namespace:  o.meta.Namespace,
		Labels:     o.meta.Labels,
		Created:    o.meta.CreationTimestamp.Time,
		Spec:       proto.Clone(o.spec),
	}
}

// sortDocuments orders documents by kind, namespace and name and numbers them, so that a
// conflict between two objects created in the same second is decided the same way every time.
func sortDocuments(docs []*config.Document) {
	sort.Slice(docs, func(i, j int) bool {
		a, b := docs[i], docs[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	for i, d := range docs {
		d.Order = i
	}
}
