package registry

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
)

func TestAChunkedPatchGivesTheListAFlatMergeGives(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(4, 2))
	for round := range 200 {
		// Entries of two services each over a few files, in precedence order; up to a third of
		// them are added by the patch, some of the rest go.
		var docs []*config.Document
		var old, add []*Service
		gone := map[*Service]struct{}{}
		entries := 1 + r.IntN(1500)
		// Some rounds add only a few services, so that most parts are touched by what goes alone.
		addOne := []int{4, 1, 0}[round%3] * 50
		for i := range entries {
			d := config.NewDocument(config.KindServiceEntry, "default", fmt.Sprintf("se-%d", i), nil)
			d.File, d.Line, d.Order = fmt.Sprintf("f%02d.yaml", i*10/entries), 1+i, i
			docs = append(docs, d)
			svcs := []*Service{{Host: fmt.Sprintf("a%d", i), Source: d}, {Host: fmt.Sprintf("b%d", i), Source: d}}
			switch k := r.IntN(600); {
			case k < addOne:
				add = append(add, svcs...)
			case k < addOne+50:
				old = append(old, svcs...)
				gone[svcs[r.IntN(2)]] = struct{}{}
			default:
				old = append(old, svcs...)
			}
		}
		prec, ok := newPrecedence(docs)
		if !ok {
			t.Fatal("the documents' files are not together")
		}
		p := &patcher{gone: gone, prec: prec, was: prec}
		want := p.merge(old, add)
		if len(want) == 0 {
			want = nil
		}
		before := chunkedOf(old)
		got := p.patchChunked(before, add)
		if !slices.Equal(got.flat(), want) {
			t.Fatalf("round %d (%d entries, %d added, %d gone): the chunked patch differs from the flat merge", round, entries, len(add), len(gone))
		}
		if !slices.Equal(before.flat(), old) {
			t.Fatalf("round %d: the patch wrote the list it patched", round)
		}
		for _, part := range got.parts {
			if len(part) == 0 || len(part) > 2*chunkLen {
				t.Fatalf("round %d: a part of %d services", round, len(part))
			}
		}
	}
}
