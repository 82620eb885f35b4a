package mcp

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	mcpapi "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
)

// maxNameBytes bounds a resource name, as Kubernetes bounds "namespace/name" (63 + 1 + 253).
const maxNameBytes = 317

// specOf returns an empty spec for a collection.
func specOf(typeURL string) proto.Message {
	switch typeURL {
	case ServiceEntryType:
		return &networking.ServiceEntry{}
	case DestinationRuleType:
		return &networking.DestinationRule{}
	case VirtualServiceType:
		return &networking.VirtualService{}
	case GatewayType:
		return &networking.Gateway{}
	case SidecarType:
		return &networking.Sidecar{}
	}
	return nil
}

// Document decodes one resource of a response strictly, as the YAML loader is strict: the Any
// must be an istio.mcp.v1alpha1.Resource whose body is the collection's spec type, with no field
// the spec does not know. source names where it came from (File of the document, and of its
// errors); a name without "namespace/" gets defaultNamespace.
func Document(typeURL, source string, a *anypb.Any, defaultNamespace string) (*config.Document, error) {
	spec := specOf(typeURL)
	if spec == nil {
		return nil, fmt.Errorf("%s: collection not served", typeURL)
	}
	var r mcpapi.Resource
	if err := anypb.UnmarshalTo(a, &r, proto.UnmarshalOptions{}); err != nil {
		return nil, fmt.Errorf("%s: not an MCP resource: %w", source, err)
	}
	ns, name, err := splitName(r.GetMetadata().GetName(), defaultNamespace)
	if err != nil {
		return nil, fmt.Errorf("%s: metadata.name: %w", source, err)
	}
	if r.GetBody() == nil {
		return nil, fmt.Errorf("%s: %s/%s: no body", source, ns, name)
	}
	if err := anypb.UnmarshalTo(r.GetBody(), spec, proto.UnmarshalOptions{}); err != nil {
		return nil, fmt.Errorf("%s: %s/%s: body: %w", source, ns, name, err)
	}
	if path := unknownField(spec.ProtoReflect(), "spec"); path != "" {
		return nil, fmt.Errorf("%s: %s/%s: %s: field unknown to %s", source, ns, name, path, spec.ProtoReflect().Descriptor().FullName())
	}
	doc := config.NewDocument(kindOf[typeURL], ns, name, spec)
	doc.APIVersion = "networking.istio.io/v1alpha3"
	doc.File, doc.Line = source, 1
	doc.Labels = r.GetMetadata().GetLabels()
	if ct := r.GetMetadata().GetCreateTime(); ct != nil {
		doc.Created = ct.AsTime()
	}
	return doc, nil
}

// splitName reads "namespace/name" as istiod's MCP clients do.
func splitName(full, defaultNamespace string) (ns, name string, err error) {
	if full == "" {
		return "", "", errors.New("empty")
	}
	if len(full) > maxNameBytes {
		return "", "", fmt.Errorf("longer than %d bytes", maxNameBytes)
	}
	ns, name, ok := strings.Cut(full, "/")
	if !ok {
		ns, name = defaultNamespace, full
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%q is not namespace/name", full)
	}
	return ns, name, nil
}

// unknownField returns the path of the first field set in m that its schema does not know, ""
// when there is none: a newer server's field must be refused, not silently dropped.
func unknownField(m protoreflect.Message, path string) string {
	if len(m.GetUnknown()) > 0 {
		return path
	}
	found := ""
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		p := path + "." + fd.JSONName()
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && found == ""; i++ {
				found = unknownField(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					found = unknownField(mv.Message(), p+"."+k.String())
					return found == ""
				})
			}
		default:
			found = unknownField(v.Message(), p)
		}
		return found == ""
	})
	return found
}
