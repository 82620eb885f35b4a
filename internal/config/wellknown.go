package config

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	networking "istio.io/api/networking/v1alpha3"
)

// wellKnown checks a value of a google.protobuf type before protojson sees it, so that a bad value
// is reported at its YAML line and field rather than at an offset of the JSON made from the YAML.
func (d *decoder) wellKnown(at int32, n *yaml.Node, md protoreflect.MessageDescriptor) bool {
	path := func() string { return d.doc.lines.path(at) }
	switch md.FullName() {
	case "google.protobuf.Duration":
		return d.duration(path(), n)
	case "google.protobuf.Timestamp":
		if n.Kind != yaml.ScalarNode {
			d.fail(n.Line, path(), "expected an RFC 3339 time")
			return false
		}
		if _, err := time.Parse(time.RFC3339Nano, n.Value); err != nil {
			d.fail(n.Line, path(), "not an RFC 3339 time: %q", n.Value)
			return false
		}
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
		"google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		// A wrapper is written as its bare value, checked like the field it wraps.
		return d.walkValue(at, n, md.Fields().ByName("value"))
	}
	// Struct, Value, ListValue and the rest take any JSON; protojson has the last word.
	return true
}

// duration accepts Go's duration syntax ("500ms", "1m30s", "1h", "0.5s"), as Istio does, and
// rewrites the value into the seconds form protojson requires ("90.000000000s").
func (d *decoder) duration(path string, n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		d.fail(n.Line, path, "expected a duration such as 500ms, 10s, 1m30s or 1h")
		return false
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(n.Line, path, "not a duration: %q (want a number with a unit: ms, s, m or h, such as 500ms, 10s, 1m30s)", n.Value)
		return false
	}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	n.Value = fmt.Sprintf("%s%d.%09ds", sign, v/time.Second, v%time.Second)
	n.Tag = "!!str"
	n.Style = 0
	return true
}

// jsonOffset matches protojson's prefix, whose space it randomly makes a no-break space so that
// nobody parses its messages, and the offset into the JSON.
var jsonOffset = regexp.MustCompile(`^proto:[\s\x{a0}]*(\(line \d+:\d+\):[\s\x{a0}]*)?`)

// unmarshalSpec converts the checked YAML spec into msg. When protojson still refuses it, the error
// is located by retrying smaller pieces of the spec, so the finding names the deepest field that
// fails alone and its YAML line instead of an offset into JSON the user never wrote.
func (d *decoder) unmarshalSpec(specLine int, spec *yaml.Node, msg protoreflect.Message) bool {
	if se, ok := msg.Interface().(*networking.ServiceEntry); ok && (d.intern == nil || !d.intern.roundTripOnly) {
		if n := resolveAlias(spec); n.Kind == yaml.MappingNode && d.setServiceEntry(n, se) {
			return true
		}
		proto.Reset(se)
	}
	if d.setDirect(spec, msg) {
		return true
	}
	proto.Reset(msg.Interface())
	err := unmarshalNode(spec, msg)
	if err == nil {
		return true
	}
	path, line := locate("spec", specLine, spec, msg.Descriptor())
	d.fail(line, path, "%s", jsonOffset.ReplaceAllString(err.Error(), ""))
	return false
}

func unmarshalNode(n *yaml.Node, msg protoreflect.Message) error {
	raw, err := json.Marshal(plain(n))
	if err != nil {
		return fmt.Errorf("convert to JSON: %w", err)
	}
	return protojson.UnmarshalOptions{}.Unmarshal(raw, msg.Interface())
}

// locate finds the deepest field of mapping n (of message md, at path whose key is on line) whose
// value alone fails to decode; when no single field fails, the mix of them does and path is named.
func locate(path string, line int, n *yaml.Node, md protoreflect.MessageDescriptor) (string, int) {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		return path, line
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		one := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}}
		if unmarshalNode(one, dynamicMessage(md)) == nil {
			continue
		}
		fp := path + "." + k.Value
		fd := md.Fields().ByJSONName(k.Value)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k.Value))
		}
		if fd == nil || fd.Message() == nil || fd.IsMap() || strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
			return fp, k.Line
		}
		if fd.IsList() && v.Kind == yaml.SequenceNode {
			for j, item := range v.Content {
				if unmarshalNode(item, dynamicMessage(fd.Message())) != nil {
					return locate(fmt.Sprintf("%s[%d]", fp, j), item.Line, item, fd.Message())
				}
			}
			return fp, k.Line
		}
		return locate(fp, k.Line, v, fd.Message())
	}
	return path, line
}

// dynamicMessage makes an empty message of md, of its generated type when one is registered.
func dynamicMessage(md protoreflect.MessageDescriptor) protoreflect.Message {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
		return mt.New()
	}
	return dynamicpb.NewMessage(md)
}
