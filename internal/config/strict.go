package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// duplicateKeys reports every mapping key set twice in one mapping, anywhere in the document, as
// the Kubernetes API server refuses them: with a duplicate, the last value silently wins, so a
// second "spec:" would replace the reviewed one and a second "namespace:" would move the object.
// It runs on the document with its merge keys expanded, where a key that overrides a merged one
// is there once, as the merge-key rules mean it. It reports whether the document is free of them.
func (d *decoder) duplicateKeys(n *yaml.Node) bool {
	ok := true
	var seen map[*yaml.Node]bool
	// The path is kept as steps and spelled only for a finding: most documents have none. The
	// buffer is the goroutine's, reused from document to document.
	var steps []pathStep
	if d.intern != nil {
		steps = d.intern.steps[:0]
		defer func() { d.intern.steps = steps[:0] }()
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		n = resolveAlias(n)
		if n == nil {
			return
		}
		if n.Anchor != "" {
			// An aliased node is checked once, where it is defined; its keys have that one
			// location. Only an anchored node can be aliased, so only those are remembered.
			if seen[n] {
				return
			}
			if seen == nil {
				seen = map[*yaml.Node]bool{}
			}
			seen[n] = true
		}
		switch n.Kind {
		case yaml.MappingNode:
			var first map[string]int
			if len(n.Content) > 16 {
				first = make(map[string]int, len(n.Content)/2)
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if line, dup := firstLine(n.Content[:i], k.Value, first); dup {
					d.failDuplicate(k.Line, spell(append(steps, pathStep{key: k.Value})), k.Value, line)
					ok = false
				} else if first != nil {
					first[k.Value] = k.Line
				}
				steps = append(steps, pathStep{key: k.Value})
				walk(n.Content[i+1])
				steps = steps[:len(steps)-1]
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				steps = append(steps, pathStep{idx: i, item: true})
				walk(c)
				steps = steps[:len(steps)-1]
			}
		}
	}
	walk(n)
	return ok
}

// firstLine finds key among the keys of pairs (every other node) before it: with a map when
// the mapping is large, else by a scan, which for the few keys of most objects costs less.
func firstLine(pairs []*yaml.Node, key string, first map[string]int) (int, bool) {
	if first != nil {
		line, ok := first[key]
		return line, ok
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i].Value == key {
			return pairs[i].Line, true
		}
	}
	return 0, false
}

// pathStep is a key, or list item idx, of a field path being walked.
type pathStep struct {
	key  string
	idx  int
	item bool
}

// spell writes steps as a field path such as "spec.ports[0].number".
func spell(steps []pathStep) string {
	var sb strings.Builder
	for i, s := range steps {
		switch {
		case s.item:
			fmt.Fprintf(&sb, "[%d]", s.idx)
		case i > 0:
			sb.WriteString("." + s.key)
		default:
			sb.WriteString(s.key)
		}
	}
	return sb.String()
}

// failDuplicate records a duplicate key; it is reported before kind and name are known, so it
// names only the file, both lines and the path.
func (d *decoder) failDuplicate(line int, path, key string, firstLine int) {
	d.fail(line, path, "%s", duplicateMessage(key, firstLine))
}

func duplicateMessage(key string, firstLine int) string {
	return fmt.Sprintf("duplicate key %q: already set at line %d (a key may appear once per object, as the Kubernetes API server requires)", key, firstLine)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
