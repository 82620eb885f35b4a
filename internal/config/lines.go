package config

import (
	"strconv"
	"strings"
)

// lineTable records where each field of a document is written as a tree of steps, one entry per
// key or list item, instead of a map from full paths: a path string per field was most of the
// decoder's allocations and a large share of a loaded registry's memory. Paths are built only
// when a finding needs one, which is rare. Entries name their keys by number in a table that the
// documents decoded together share, so that they hold no pointers for the collector to scan and
// take 12 bytes each where a string made them 32.
type lineTable struct {
	entries []lineEntry
	keys    *keyTable
}

// lineEntry is one step below parent (-1 for the document): step > 0 is the key numbered
// step, step < 0 list item -step-1.
type lineEntry struct {
	parent int32
	line   int32
	step   int32
}

// isItem reports whether e is a list item, and which.
func (e *lineEntry) isItem() (int, bool) { return int(-e.step - 1), e.step < 0 }

// keyTable numbers the keys of the line tables of one decoding goroutine from 1. It is written
// only while those documents are decoded and only read once they are loaded.
type keyTable struct {
	names []string
	index map[string]int32
}

// number returns key's number, adding a copy of it when new: the key may share the text of a
// file, which the table would otherwise keep.
func (k *keyTable) number(key string) int32 {
	if n, ok := k.index[key]; ok {
		return n
	}
	if k.index == nil {
		k.index = map[string]int32{}
	}
	key = strings.Clone(key)
	k.names = append(k.names, key)
	n := int32(len(k.names))
	k.index[key] = n
	return n
}

// name is the key of entry e.
func (t *lineTable) name(e *lineEntry) string { return t.keys.names[e.step-1] }

// noEntry is the parent of the document's own keys.
const noEntry = -1

// key records field key below parent at line and returns its entry.
func (t *lineTable) key(parent int32, key string, line int) int32 {
	if t.keys == nil {
		t.keys = &keyTable{}
	}
	step := int32(-1)
	if key != "" {
		// An empty key is recorded as list item 0 is, as it always was.
		step = t.keys.number(key)
	}
	t.entries = append(t.entries, lineEntry{parent: parent, line: int32(line), step: step})
	return int32(len(t.entries) - 1)
}

// item records list item i below parent at line and returns its entry.
func (t *lineTable) item(parent int32, i, line int) int32 {
	t.entries = append(t.entries, lineEntry{parent: parent, line: int32(line), step: -int32(i) - 1})
	return int32(len(t.entries) - 1)
}

// path spells entry at as a field path such as "spec.endpoints[0].ports.https".
func (t *lineTable) path(at int32) string {
	if at == noEntry {
		return ""
	}
	var steps []int32
	for e := at; e != noEntry; e = t.entries[e].parent {
		steps = append(steps, e)
	}
	var sb strings.Builder
	for i := len(steps) - 1; i >= 0; i-- {
		e := &t.entries[steps[i]]
		if idx, item := e.isItem(); item {
			sb.WriteByte('[')
			sb.WriteString(strconv.Itoa(idx))
			sb.WriteByte(']')
			continue
		}
		if i != len(steps)-1 {
			sb.WriteByte('.')
		}
		sb.WriteString(t.name(e))
	}
	return sb.String()
}

// join is path(parent) with key appended, without recording anything.
func (t *lineTable) join(parent int32, key string) string {
	if parent == noEntry {
		return key
	}
	return t.path(parent) + "." + key
}

// lookup returns the line of the deepest recorded field that path starts with, and whether
// any step matched. A key may itself contain dots (a label such as app.kubernetes.io/name), so
// each step takes the longest key that the rest of the path starts with.
func (t *lineTable) lookup(path string) (int, bool) {
	cur, line, found := int32(noEntry), 0, false
	rest := path
	for rest != "" {
		best, bestLen := int32(-1), -1
		for i := range t.entries {
			e := &t.entries[i]
			if e.parent != cur {
				continue
			}
			if n := t.match(e, rest, cur == noEntry); n > bestLen {
				best, bestLen = int32(i), n
			}
		}
		if best < 0 {
			break
		}
		cur, line, found = best, int(t.entries[best].line), true
		rest = rest[bestLen:]
	}
	return line, found
}

// match returns how many bytes of rest this step spells, with its separator, or -1.
func (t *lineTable) match(e *lineEntry, rest string, top bool) int {
	if idx, item := e.isItem(); item {
		s := "[" + strconv.Itoa(idx) + "]"
		if strings.HasPrefix(rest, s) && stepEnds(rest[len(s):]) {
			return len(s)
		}
		return -1
	}
	sep := 0
	if !top {
		if !strings.HasPrefix(rest, ".") {
			return -1
		}
		sep = 1
	}
	if key := t.name(e); strings.HasPrefix(rest[sep:], key) && stepEnds(rest[sep+len(key):]) {
		return sep + len(key)
	}
	return -1
}

// stepEnds reports whether what follows a step is the end of the path or another step.
func stepEnds(s string) bool { return s == "" || s[0] == '.' || s[0] == '[' }
