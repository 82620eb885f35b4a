package config

import (
	"strconv"
	"strings"
)

// lineTable records where each field of a document is written as a tree of steps, one entry per
// key or list item, instead of a map from full paths: a path string per field was most of the
// decoder's allocations and a large share of a loaded registry's memory. Paths are built only
// when a finding needs one, which is rare.
type lineTable struct {
	entries []lineEntry
}

// lineEntry is one step below parent (-1 for the document): a key, or list item idx when key
// is empty.
type lineEntry struct {
	parent int32
	line   int32
	idx    int32
	key    string
}

// noEntry is the parent of the document's own keys.
const noEntry = -1

// key records field key below parent at line and returns its entry.
func (t *lineTable) key(parent int32, key string, line int) int32 {
	t.entries = append(t.entries, lineEntry{parent: parent, line: int32(line), key: key})
	return int32(len(t.entries) - 1)
}

// item records list item i below parent at line and returns its entry.
func (t *lineTable) item(parent int32, i, line int) int32 {
	t.entries = append(t.entries, lineEntry{parent: parent, line: int32(line), idx: int32(i)})
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
		if e.key == "" {
			sb.WriteByte('[')
			sb.WriteString(strconv.Itoa(int(e.idx)))
			sb.WriteByte(']')
			continue
		}
		if i != len(steps)-1 {
			sb.WriteByte('.')
		}
		sb.WriteString(e.key)
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
			if n := e.match(rest, cur == noEntry); n > bestLen {
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
func (e *lineEntry) match(rest string, top bool) int {
	if e.key == "" {
		s := "[" + strconv.Itoa(int(e.idx)) + "]"
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
	if strings.HasPrefix(rest[sep:], e.key) && stepEnds(rest[sep+len(e.key):]) {
		return sep + len(e.key)
	}
	return -1
}

// stepEnds reports whether what follows a step is the end of the path or another step.
func stepEnds(s string) bool { return s == "" || s[0] == '.' || s[0] == '[' }
