package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// duplicateKeys reports every mapping key set twice in one mapping, anywhere in the document, as
// the Kubernetes API server refuses them: with a duplicate, the last value silently wins, so a
// second "spec:" would replace the reviewed one and a second "namespace:" would move the object.
// It runs on the document with its merge keys expanded, where a key that overrides a merged one
// is there once, as the merge-key rules mean it. It reports whether the document is free of them.
func (d *decoder) duplicateKeys(n *yaml.Node) bool {
	ok := true
	seen := map[*yaml.Node]bool{}
	var walk func(path string, n *yaml.Node)
	walk = func(path string, n *yaml.Node) {
		n = resolveAlias(n)
		if n == nil || seen[n] {
			// An aliased node is checked once, where it is defined; its keys have that one location.
			return
		}
		seen[n] = true
		switch n.Kind {
		case yaml.MappingNode:
			first := make(map[string]int, len(n.Content)/2)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				fp := joinPath(path, k.Value)
				if line, dup := first[k.Value]; dup {
					d.failDuplicate(k.Line, fp, k.Value, line)
					ok = false
				} else {
					first[k.Value] = k.Line
				}
				walk(fp, n.Content[i+1])
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("", n)
	return ok
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
