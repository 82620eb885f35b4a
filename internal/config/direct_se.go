package config

import (
	"strconv"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"
)

// ServiceEntries are most of any large config, and setting their fields through protoreflect
// (a reflect.Append per host, a converter per value) was most of the direct path's time. The
// typed path below sets the generated structs themselves, by the same rules as value: a node it
// does not take as value would makes it give up, and the generic path then decides afresh.

// fieldOf finds the field key names in md as setDirect does, by JSON name or proto name, and
// refuses one already set by its other name.
func fieldOf(md protoreflect.MessageDescriptor, key string, seen *uint64) protoreflect.FieldDescriptor {
	fd := md.Fields().ByJSONName(key)
	if fd == nil {
		fd = md.Fields().ByName(protoreflect.Name(key))
	}
	if fd == nil || fd.Number() >= 64 || *seen&(1<<fd.Number()) != 0 {
		return nil
	}
	*seen |= 1 << fd.Number()
	return fd
}

// eachField calls set for every key of mapping n with a non-null value, with the field the key
// names in md; false (from an unknown or repeated key, or from set) means nothing is decided.
func eachField(n *yaml.Node, md protoreflect.MessageDescriptor, set func(fd protoreflect.FieldDescriptor, v *yaml.Node) bool) bool {
	var seen uint64
	for i := 0; i+1 < len(n.Content); i += 2 {
		fd := fieldOf(md, n.Content[i].Value, &seen)
		v := resolveAlias(n.Content[i+1])
		if fd == nil {
			return false
		}
		if !isNull(v) && !set(fd, v) {
			return false
		}
	}
	return true
}

// listOf decodes sequence v into a slice of messages held in one allocation, setting each from
// its mapping with set; false means nothing is decided.
func listOf[T any](v *yaml.Node, set func(*yaml.Node, *T) bool) ([]*T, bool) {
	if v.Kind != yaml.SequenceNode {
		return nil, false
	}
	out := make([]*T, 0, len(v.Content))
	items := make([]T, len(v.Content))
	for i, item := range v.Content {
		item = resolveAlias(item)
		if isNull(item) || item.Kind != yaml.MappingNode || !set(item, &items[i]) {
			return nil, false
		}
		out = append(out, &items[i])
	}
	return out, true
}

// setServiceEntry fills se from mapping n; false means nothing is decided.
func (d *decoder) setServiceEntry(n *yaml.Node, se *networking.ServiceEntry) bool {
	return eachField(n, se.ProtoReflect().Descriptor(), func(fd protoreflect.FieldDescriptor, v *yaml.Node) bool {
		ok := true
		switch fd.Name() {
		case "hosts":
			se.Hosts, ok = d.strings(v, false)
		case "addresses":
			se.Addresses, ok = d.strings(v, false)
		case "subject_alt_names":
			se.SubjectAltNames, ok = d.strings(v, false)
		case "export_to":
			se.ExportTo, ok = d.strings(v, true)
		case "location":
			var e int32
			e, ok = enumValue(fd, v)
			se.Location = networking.ServiceEntry_Location(e)
		case "resolution":
			var e int32
			e, ok = enumValue(fd, v)
			se.Resolution = networking.ServiceEntry_Resolution(e)
		case "ports":
			se.Ports, ok = d.servicePorts(v)
		case "endpoints":
			se.Endpoints, ok = d.workloadEntries(v)
		default:
			ok = false
		}
		return ok
	})
}

// strings reads a list of strings, each interned or kept.
func (d *decoder) strings(v *yaml.Node, intern bool) ([]string, bool) {
	if v.Kind != yaml.SequenceNode {
		return nil, false
	}
	out := make([]string, 0, len(v.Content))
	for _, item := range v.Content {
		s, ok := d.str(resolveAlias(item), intern)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// str reads a string as value does.
func (d *decoder) str(v *yaml.Node, intern bool) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!str" || !utf8.ValidString(v.Value) {
		return "", false
	}
	if intern {
		return d.intern.of(v.Value), true
	}
	return d.intern.keep(v.Value), true
}

// u32 reads an unsigned 32-bit number as value does.
func u32(v *yaml.Node) (uint32, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
		return 0, false
	}
	n, err := strconv.ParseUint(v.Value, 10, 32)
	return uint32(n), err == nil
}

// enumValue reads an enum by name or number as value does.
func enumValue(fd protoreflect.FieldDescriptor, v *yaml.Node) (int32, bool) {
	if v.Kind != yaml.ScalarNode {
		return 0, false
	}
	if ev := fd.Enum().Values().ByName(protoreflect.Name(v.Value)); ev != nil && v.Tag == "!!str" {
		return int32(ev.Number()), true
	}
	if n, err := strconv.ParseInt(v.Value, 10, 32); err == nil && v.Tag == "!!int" {
		return int32(n), true
	}
	return 0, false
}

func (d *decoder) servicePorts(v *yaml.Node) ([]*networking.ServicePort, bool) {
	return listOf(v, d.servicePort)
}

// servicePort fills p from mapping n; false means nothing is decided. The descriptor is taken
// from a nil message: a message's own ProtoReflect stores its type in it, an atomic write to
// every port and endpoint decoded that decoding has no use for.
func (d *decoder) servicePort(n *yaml.Node, p *networking.ServicePort) bool {
	return eachField(n, (*networking.ServicePort)(nil).ProtoReflect().Descriptor(), func(fd protoreflect.FieldDescriptor, v *yaml.Node) bool {
		ok := true
		switch fd.Name() {
		case "number":
			p.Number, ok = u32(v)
		case "target_port":
			p.TargetPort, ok = u32(v)
		case "name":
			p.Name, ok = d.str(v, true)
		case "protocol":
			p.Protocol, ok = d.str(v, true)
		default:
			ok = false
		}
		return ok
	})
}

func (d *decoder) workloadEntries(v *yaml.Node) ([]*networking.WorkloadEntry, bool) {
	return listOf(v, d.workloadEntry)
}

// workloadEntry fills e from mapping n, as servicePort fills a port.
func (d *decoder) workloadEntry(n *yaml.Node, e *networking.WorkloadEntry) bool {
	return eachField(n, (*networking.WorkloadEntry)(nil).ProtoReflect().Descriptor(), func(fd protoreflect.FieldDescriptor, v *yaml.Node) bool {
		ok := true
		switch fd.Name() {
		case "address":
			e.Address, ok = d.str(v, false)
		case "network":
			e.Network, ok = d.str(v, true)
		case "locality":
			e.Locality, ok = d.str(v, true)
		case "service_account":
			e.ServiceAccount, ok = d.str(v, true)
		case "weight":
			e.Weight, ok = u32(v)
		case "ports":
			e.Ports, ok = d.portMap(v)
		case "labels":
			e.Labels, ok = d.labelMap(v)
		default:
			ok = false
		}
		return ok
	})
}

// mapItems checks a map as setField does: a mapping of UTF-8 keys without null values.
func mapItems(v *yaml.Node) bool {
	if v.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		if isNull(resolveAlias(v.Content[i+1])) || !utf8.ValidString(v.Content[i].Value) {
			return false
		}
	}
	return true
}

func (d *decoder) portMap(v *yaml.Node) (map[string]uint32, bool) {
	if !mapItems(v) {
		return nil, false
	}
	m := make(map[string]uint32, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		n, ok := u32(resolveAlias(v.Content[i+1]))
		if !ok {
			return nil, false
		}
		m[d.intern.of(v.Content[i].Value)] = n
	}
	return m, true
}

func (d *decoder) labelMap(v *yaml.Node) (map[string]string, bool) {
	if !mapItems(v) {
		return nil, false
	}
	m := make(map[string]string, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		s, ok := d.str(resolveAlias(v.Content[i+1]), true)
		if !ok {
			return nil, false
		}
		m[d.intern.of(v.Content[i].Value)] = s
	}
	return m, true
}
