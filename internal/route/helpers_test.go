package route

import (
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// snapshot decodes YAML documents (namespace "default" unless they say) into a snapshot.
func snapshot(t testing.TB, yaml string) *registry.Snapshot {
	t.Helper()
	order := 0
	docs, diags := config.Decode("test.yaml", strings.NewReader(yaml), "default", &order)
	if len(diags) > 0 {
		t.Fatalf("decode: %v", diags)
	}
	return registry.Build(docs, 1)
}

// headers is a HeaderSource over a map of lower-case names.
type headers map[string]string

func (h headers) Header(name string) ([]byte, bool) {
	v, ok := h[name]
	return []byte(v), ok
}

// byteHeaders is a HeaderSource that hands out stored byte slices, as the proxy's adapter does.
type byteHeaders map[string][]byte

func (h byteHeaders) Header(name string) ([]byte, bool) {
	v, ok := h[name]
	return v, ok
}
