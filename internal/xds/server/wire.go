package server

import (
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A full push sends the same resources to every client of a group, and gRPC marshals each
// response anew: 10,000 resource messages walked per client. For a response that carries a
// whole type, the resources field is instead given pre-encoded, once per type and version, as
// the message's unknown fields: protobuf writes them out verbatim, and on the wire they are the
// very bytes the repeated field would be, so a client decodes them as the resources field. The
// response's Resources slice is then empty on the server side; nothing there reads it.
var (
	deltaResourcesField = (&discovery.DeltaDiscoveryResponse{}).ProtoReflect().Descriptor().Fields().ByName("resources").Number()
	sotwResourcesField  = (&discovery.DiscoveryResponse{}).ProtoReflect().Descriptor().Fields().ByName("resources").Number()
)

// wire holds the pre-encoded resources field of a whole type, in both protocols' forms.
type wire struct {
	deltaOnce, sotwOnce sync.Once
	delta, sotw         []byte
	deltaErr, sotwErr   error
}

// deltaWire returns the encoded repeated Resource field of every resource of ts.
func (ts *typeSet) deltaWire() ([]byte, error) {
	ts.wire.deltaOnce.Do(func() {
		var b []byte
		for _, enc := range ts.list {
			m, err := proto.MarshalOptions{Deterministic: true}.Marshal(enc.delta)
			if err != nil {
				ts.wire.deltaErr = err
				return
			}
			b = protowire.AppendTag(b, deltaResourcesField, protowire.BytesType)
			b = protowire.AppendBytes(b, m)
		}
		ts.wire.delta = b
	})
	return ts.wire.delta, ts.wire.deltaErr
}

// sotwWire returns the encoded repeated Any field of every resource of ts.
func (ts *typeSet) sotwWire() ([]byte, error) {
	ts.wire.sotwOnce.Do(func() {
		var b []byte
		for _, enc := range ts.list {
			m, err := proto.MarshalOptions{Deterministic: true}.Marshal(enc.any)
			if err != nil {
				ts.wire.sotwErr = err
				return
			}
			b = protowire.AppendTag(b, sotwResourcesField, protowire.BytesType)
			b = protowire.AppendBytes(b, m)
		}
		ts.wire.sotw = b
	})
	return ts.wire.sotw, ts.wire.sotwErr
}

// preEncoded moves a response's resources into raw, when raw is available; the message then
// encodes to the same bytes as with the resources set.
func preEncoded(m proto.Message, get func() ([]byte, error)) bool {
	raw, err := get()
	if err != nil || len(raw) == 0 {
		return false
	}
	m.ProtoReflect().SetUnknown(protoreflect.RawFields(raw))
	return true
}
