package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshentry/meshentry/internal/diag"
)

// decodeScannedAndNot decodes data through the scanner (when it takes the file) and through yaml.v3 alone.
func decodeScannedAndNot(data []byte) (scanned, reference streamResult) {
	order := 0
	scanned.docs, scanned.diags, scanned.read = decodeBytes("f.yaml", data, "default", &order, newInterner())
	yamlOnly := newInterner()
	yamlOnly.yamlOnly = true
	order = 0
	reference.docs, reference.diags, reference.read = decodeBytes("f.yaml", data, "default", &order, yamlOnly)
	return scanned, reference
}

// sameResult reports the first difference between two decodings of one stream.
func sameResult(a, b streamResult) error {
	if a.read != b.read || len(a.docs) != len(b.docs) {
		return fmt.Errorf("read %d documents and kept %d, yaml.v3 %d and %d", a.read, len(a.docs), b.read, len(b.docs))
	}
	if !reflect.DeepEqual(a.diags, b.diags) && !(len(a.diags) == 0 && len(b.diags) == 0) {
		return fmt.Errorf("findings %v, yaml.v3 %v", a.diags, b.diags)
	}
	for i := range a.docs {
		x, y := *a.docs[i], *b.docs[i]
		if !proto.Equal(x.Spec, y.Spec) {
			return fmt.Errorf("document %d: spec %v, yaml.v3 %v", i, x.Spec, y.Spec)
		}
		x.Spec, y.Spec = nil, nil
		if err := sameLines(&x.lines, &y.lines); err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		x.lines, y.lines = lineTable{}, lineTable{}
		if !reflect.DeepEqual(x, y) {
			return fmt.Errorf("document %d: %+v, yaml.v3 %+v", i, x, y)
		}
	}
	return nil
}

// sameLines compares two line tables step by step, keys by name.
func sameLines(a, b *lineTable) error {
	if len(a.entries) != len(b.entries) {
		return fmt.Errorf("%d field lines, yaml.v3 %d", len(a.entries), len(b.entries))
	}
	for i := range a.entries {
		x, y := a.entries[i], b.entries[i]
		var kx, ky string
		if x.step > 0 {
			kx = a.name(&x)
		}
		if y.step > 0 {
			ky = b.name(&y)
		}
		if x.parent != y.parent || x.line != y.line || (x.step < 0) != (y.step < 0) || (x.step < 0 && x.step != y.step) || kx != ky {
			return fmt.Errorf("field line %d: %+v %q, yaml.v3 %+v %q", i, x, kx, y, ky)
		}
	}
	return nil
}

// configSeeds are every YAML file of the repository and of the shared spec.
func configSeeds(tb testing.TB) map[string][]byte {
	out := map[string][]byte{}
	for _, root := range []string{"../../testdata", "../../examples", "testdata", "../../../../shared/spec"} {
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				return nil
			}
			if b, err := os.ReadFile(path); err == nil {
				out[path] = b
			}
			return nil
		})
	}
	if len(out) == 0 {
		tb.Fatal("no seed files found")
	}
	return out
}

func TestScannedDecodingMatchesYAMLv3(t *testing.T) {
	t.Parallel()
	for path, data := range configSeeds(t) {
		t.Run("decodes "+path+" as yaml.v3 does", func(t *testing.T) {
			t.Parallel()
			scanned, reference := decodeScannedAndNot(data)
			if err := sameResult(scanned, reference); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestScannerTakesTheGeneratedEntries(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/scale-sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var in interner
	n := 0
	ok := in.scanner.Parse(string(data), 1000, func(docs []*yaml.Node) { n += len(docs) })
	if !ok || n != 24 {
		t.Fatalf("scanner took %d documents, ok %v; want all 24", n, ok)
	}
}

func TestScannedDocumentsDoNotShareTheFileText(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/scale-sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A document with an unknown field and a skipped foreign kind: their findings keep strings too.
	data = append(data, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: apps}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: bad}\nspec:\n  hostz: [a.com]\n"...)
	order := 0
	src := string(data)
	in := newInterner()
	in.borrowed = true
	var s streamResult
	ok := in.scanner.Parse(src, 1000, func(nodes []*yaml.Node) {
		for _, n := range nodes {
			s.add(decodeTop("f.yaml", "default", n, in), &order)
		}
	})
	in.borrowed = false
	if !ok {
		t.Fatal("scanner refused the sample")
	}
	var leaks []string
	check := func(what, v string) {
		if v != "" && inside(src, v) {
			leaks = append(leaks, what+"="+v)
		}
	}
	for _, d := range s.docs {
		check("apiVersion", d.APIVersion)
		check("kind", d.Kind)
		check("name", d.Name)
		check("namespace", d.Namespace)
		for k, v := range d.Labels {
			check("label key", k)
			check("label", v)
		}
		for _, k := range d.lines.keys.names {
			check("line key", k)
		}
		se := d.ServiceEntry()
		for _, h := range se.GetHosts() {
			check("host", h)
		}
		for _, a := range se.GetAddresses() {
			check("address", a)
		}
		for _, e := range se.GetEndpoints() {
			check("endpoint", e.GetAddress())
		}
		for _, p := range se.GetPorts() {
			check("port name", p.GetName())
		}
	}
	for _, dg := range s.diags {
		for _, v := range []string{dg.Field, dg.Kind, dg.Name, dg.Namespace, dg.Message} {
			check("finding", v)
		}
	}
	if len(s.docs) != 24 || !hasCode(s.diags, CodeSkippedForeign) || !hasCode(s.diags, CodeSchema) {
		t.Fatalf("decoded %d documents, findings %v", len(s.docs), s.diags)
	}
	if len(leaks) > 0 {
		t.Fatalf("strings still inside the file text: %v", leaks)
	}
}

func hasCode(diags []diag.Diagnostic, code string) bool {
	for _, d := range diags {
		if d.Code == code {
			return true
		}
	}
	return false
}

// inside reports whether v's bytes lie within src's.
func inside(src, v string) bool {
	s, e := uintptrOf(src), uintptrOf(src)+uintptr(len(src))
	p := uintptrOf(v)
	return p >= s && p < e
}

// FuzzScannedDecoding holds the loader's scanner path to its yaml.v3 path: the same documents,
// field lines and findings for any input.
func FuzzScannedDecoding(f *testing.F) {
	for _, b := range configSeeds(f) {
		f.Add(b)
	}
	f.Add([]byte("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a, namespace: x}\nspec: {hosts: [a.com], ports: [{number: 80, name: http}]}\n"))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  metadata:\n    name: a\n  spec:\n    hosts: [a.com]\n    hosts: [b.com]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		scanned, reference := decodeScannedAndNot(data)
		if err := sameResult(scanned, reference); err != nil {
			t.Fatalf("%v\ninput %q", err, data)
		}
	})
}

func uintptrOf(s string) uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(s))) }

// TestDecodedDocumentsOutliveTheReadBuffer decodes every seed from a buffer that is then
// overwritten, as readFile reuses it for the next file: nothing decoded may change.
func TestDecodedDocumentsOutliveTheReadBuffer(t *testing.T) {
	t.Parallel()
	seeds := configSeeds(t)
	extra, err := os.ReadFile("testdata/scale-sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seeds["sample with a foreign kind, a bad field and a list"] = append(extra, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: apps}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: bad, namespace: x}\nspec:\n  hostz: [a.com]\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  metadata: {name: l, labels: {k: v}}\n  spec:\n    hosts: [l.com]\n    endpoints:\n    - {address: 1.1.1.1, labels: {a: b}, ports: {http: 80}, network: n}\n"...)
	for path, data := range seeds {
		t.Run("keeps what "+path+" decoded to after its buffer is reused", func(t *testing.T) {
			t.Parallel()
			buf := append([]byte(nil), data...)
			var got, want streamResult
			order := 0
			got.docs, got.diags, got.read = decodeBytes("f.yaml", buf, "default", &order, newInterner())
			for i := range buf {
				buf[i] = 'x'
			}
			order = 0
			want.docs, want.diags, want.read = decodeBytes("f.yaml", data, "default", &order, newInterner())
			if err := sameResult(got, want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Not parallel: it decodes thousands of documents twice, which under -race would slow the
// package's timed tests running beside it.
func TestALargeFileDecodesOnEveryCoreAsOnOne(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one core: the documents of a file are decoded on one goroutine")
	}
	var sb strings.Builder
	for i := range 3 * parallelDocs / 2 {
		fmt.Fprintf(&sb, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se-%d\n  namespace: ns%d\n  labels: {app: a%d}\nspec:\n  hosts: [h%d.example.com]\n  ports:\n  - {number: %d, name: p%d}\n", i, i%7, i%13, i, 1+i%60000, i%5)
		switch i % 500 {
		case 17:
			sb.WriteString("  hostz: [typo]\n")
		case 99:
			sb.WriteString("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n")
		}
	}
	scanned, reference := decodeScannedAndNot([]byte(sb.String()))
	if err := sameResult(scanned, reference); err != nil {
		t.Fatal(err)
	}
	for i, d := range scanned.docs {
		if d.Order != i {
			t.Fatalf("document %d numbered %d", i, d.Order)
		}
	}
	if len(scanned.diags) == 0 || len(scanned.docs) < parallelDocs {
		t.Fatalf("decoded %d documents with %d findings", len(scanned.docs), len(scanned.diags))
	}
}
