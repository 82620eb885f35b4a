package config

import (
	"os"
	"testing"
	"unsafe"

	networking "istio.io/api/networking/v1alpha3"
)

// TestEachFilesDocumentsKeepChunksOfTheirOwn decodes two files with one interner, as a loading
// goroutine does, and checks that what the first file's documents keep lies in none of the
// chunks the second file's strings and line tables were copied to: a chunk shared by two files
// would keep a file's garbage alive after only the other one changed.
func TestEachFilesDocumentsKeepChunksOfTheirOwn(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/scale-sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := newInterner()
	order := 0
	first, _, _ := decodeBytes("a.yaml", append([]byte(nil), data...), "default", &order, in)
	if in.arena == nil || in.lineSlab == nil {
		t.Fatal("the scanned file's documents were not copied to the arena and the line slab")
	}
	second, _, _ := decodeBytes("b.yaml", append([]byte(nil), data...), "default", &order, in)
	if len(first) == 0 || len(first) != len(second) {
		t.Fatalf("decoded %d and %d documents", len(first), len(second))
	}
	arena := unsafe.String(unsafe.SliceData(in.arena), cap(in.arena))
	lines := in.lineSlab[:cap(in.lineSlab)]
	for i, d := range first {
		for _, s := range []string{d.Name, second[i].Name} {
			if s == "" {
				t.Fatalf("document %d has no name", i)
			}
		}
		if inside(arena, d.Name) {
			t.Errorf("document %d of the first file keeps its name in the second file's chunk", i)
		}
		if insideSlab(in.docSlab, d) {
			t.Errorf("document %d of the first file is in the second file's document slab", i)
		}
		if se, ok := d.Spec.(*networking.ServiceEntry); ok && insideSlab(in.seSlab, se) {
			t.Errorf("document %d of the first file has its spec in the second file's ServiceEntry slab", i)
		}
		if e := d.lines.entries; len(e) > 0 && insideLines(lines, &e[0]) {
			t.Errorf("document %d of the first file keeps its line table in the second file's slab", i)
		}
	}
	if last := second[len(second)-1]; !inside(arena, last.Name) || !insideSlab(in.docSlab, last) {
		t.Error("the second file's last document is not in the current chunks, so the checks above show nothing")
	}
}

// TestAppendingToALineTableLeavesTheNextDocumentsAlone checks that line tables cut from one
// slab have no room past their end, so that growing one copies it.
func TestAppendingToALineTableLeavesTheNextDocumentsAlone(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/scale-sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	order := 0
	docs, _, _ := decodeBytes("a.yaml", data, "default", &order, newInterner())
	if len(docs) < 2 {
		t.Fatalf("decoded %d documents", len(docs))
	}
	next := append([]lineEntry(nil), docs[1].lines.entries...)
	_ = append(docs[0].lines.entries, lineEntry{parent: -7, line: -7, step: -7})
	for i, e := range docs[1].lines.entries {
		if e != next[i] {
			t.Fatalf("entry %d of the next document changed to %+v", i, e)
		}
	}
}

// insideSlab reports whether p points into slab's backing array.
func insideSlab[T any](slab []T, p *T) bool {
	if cap(slab) == 0 {
		return false
	}
	s := uintptr(unsafe.Pointer(unsafe.SliceData(slab)))
	q := uintptr(unsafe.Pointer(p))
	return q >= s && q < s+uintptr(cap(slab))*unsafe.Sizeof(*p)
}

// insideLines reports whether e lies within slab's backing array.
func insideLines(slab []lineEntry, e *lineEntry) bool {
	s := uintptr(unsafe.Pointer(unsafe.SliceData(slab)))
	p := uintptr(unsafe.Pointer(e))
	return p >= s && p < s+uintptr(len(slab))*unsafe.Sizeof(lineEntry{})
}

// BenchmarkDecodeFiles decodes the sample as a loading goroutine decodes file after file, one
// interner for all: allocations per file are what the arena and the line slab cut.
func BenchmarkDecodeFiles(b *testing.B) {
	data, err := os.ReadFile("testdata/scale-sample.yaml")
	if err != nil {
		b.Fatal(err)
	}
	in := newInterner()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		order := 0
		if docs, _, _ := decodeBytes("a.yaml", data, "default", &order, in); len(docs) == 0 {
			b.Fatal("no documents")
		}
	}
}
