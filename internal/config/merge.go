package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// YAML merge keys ("<<: *base", "<<: [*a, *b]") are expanded before anything else looks at a
// document, because kubectl and istioctl read YAML through sigs.k8s.io/yaml, which expands them:
// a file that shares fields between objects this way is applied by Istio, so it is read here too.
// The rules are the merge-key type's (yaml.org/type/merge.html): a key the mapping sets itself
// wins over a merged one wherever "<<" is written, and of a list of merged mappings the earlier
// one wins. Merged keys stay the nodes where they are written, so their lines point there.

// mergeError is a merge key that cannot be expanded, with where it is written.
type mergeError struct {
	line int
	path string
	msg  string
}

// merger expands the merge keys of one document. Its results are remembered per node, so a
// mapping merged or aliased many times is expanded once and stays one shared node.
type merger struct {
	// budget is what is left of maxExpandedNodes: every node copied and every merged key looked
	// at spends one, so a few bytes of merges of merges cannot make the expansion itself costly.
	budget int
	nodes  map[*yaml.Node]*yaml.Node
	pairs  map[*yaml.Node][]*yaml.Node
	// busy are the mappings whose merged keys are being gathered: meeting one again means a
	// mapping merges itself, which has no meaning (and would never end).
	busy map[*yaml.Node]bool
}

func newMerger() *merger {
	return &merger{budget: maxExpandedNodes, nodes: map[*yaml.Node]*yaml.Node{},
		pairs: map[*yaml.Node][]*yaml.Node{}, busy: map[*yaml.Node]bool{}}
}

// isMergeKey reports whether k is the plain "<<" key; a quoted "<<" (and so any JSON key) is an
// ordinary string.
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// expandMerges returns n with its merge keys expanded, or reports why that is impossible.
func (d *decoder) expandMerges(n *yaml.Node) (*yaml.Node, bool) {
	if !hasMergeKey(n, nil) {
		// Expanding copies every mapping; without a merge key the copy would equal n.
		return n, true
	}
	out, err := newMerger().node("", n)
	if err != nil {
		d.fail(err.line, err.path, "%s", err.msg)
		return nil, false
	}
	return out, true
}

func (m *merger) spend(n *yaml.Node, path string) *mergeError {
	m.budget--
	if m.budget < 0 {
		return &mergeError{line: n.Line, path: path, msg: fmt.Sprintf(
			"document too large once its YAML merge keys are expanded (more than %d values)", maxExpandedNodes)}
	}
	return nil
}

// node returns a copy of n in which no mapping has a merge key; scalars are shared, not copied.
func (m *merger) node(path string, n *yaml.Node) (*yaml.Node, *mergeError) {
	if n == nil || n.Kind == yaml.ScalarNode {
		return n, nil
	}
	if c, ok := m.nodes[n]; ok {
		return c, nil
	}
	if err := m.spend(n, path); err != nil {
		return nil, err
	}
	c := *n
	// Remembered before the children are walked, so an alias inside its own anchor ends here;
	// such a cycle is refused later by the depth limit, as it was before merge keys were read.
	m.nodes[n] = &c
	var err *mergeError
	switch n.Kind {
	case yaml.AliasNode:
		c.Alias, err = m.node(path, n.Alias)
	case yaml.DocumentNode, yaml.SequenceNode:
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, item := range n.Content {
			ip := path
			if n.Kind == yaml.SequenceNode {
				ip = fmt.Sprintf("%s[%d]", path, i)
			}
			if c.Content[i], err = m.node(ip, item); err != nil {
				break
			}
		}
	case yaml.MappingNode:
		var pairs []*yaml.Node
		if pairs, err = m.merged(path, n); err != nil {
			break
		}
		c.Content = make([]*yaml.Node, len(pairs))
		for i := 0; i+1 < len(pairs); i += 2 {
			c.Content[i] = pairs[i]
			if c.Content[i+1], err = m.node(joinPath(path, pairs[i].Value), pairs[i+1]); err != nil {
				break
			}
		}
	}
	return &c, err
}

// merged returns the key/value pairs of mapping n with its merge key replaced by the pairs it
// brings in, in its place; the values are as written (node expands them).
func (m *merger) merged(path string, n *yaml.Node) ([]*yaml.Node, *mergeError) {
	if p, ok := m.pairs[n]; ok {
		return p, nil
	}
	at, err := mergeKeyOf(path, n)
	if err != nil {
		return nil, err
	}
	if at < 0 {
		m.pairs[n] = n.Content
		return n.Content, nil
	}
	if m.busy[n] {
		return nil, &mergeError{line: n.Content[at].Line, path: joinPath(path, "<<"),
			msg: "a merge key (<<) brings in the mapping it is part of"}
	}
	m.busy[n] = true
	defer delete(m.busy, n)
	sources, err := mergeSources(path, n.Content[at+1])
	if err != nil {
		return nil, err
	}
	// Keys the mapping sets itself win, wherever they are written; so do earlier sources.
	have := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if i != at {
			have[n.Content[i].Value] = true
		}
	}
	var in []*yaml.Node
	for _, src := range sources {
		sp, err := m.merged(path, src)
		if err != nil {
			return nil, err
		}
		for j := 0; j+1 < len(sp); j += 2 {
			if err := m.spend(sp[j], path); err != nil {
				return nil, err
			}
			if k := sp[j].Value; !have[k] {
				have[k] = true
				in = append(in, sp[j], sp[j+1])
			}
		}
	}
	out := make([]*yaml.Node, 0, len(n.Content)-2+len(in))
	out = append(out, n.Content[:at]...)
	out = append(out, in...)
	out = append(out, n.Content[at+2:]...)
	m.pairs[n] = out
	return out, nil
}

// mergeKeyOf returns the index of n's merge key, -1 when it has none. Two merge keys are refused
// like any other key set twice: which one wins would be a guess.
func mergeKeyOf(path string, n *yaml.Node) (int, *mergeError) {
	at := -1
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !isMergeKey(n.Content[i]) {
			continue
		}
		if at >= 0 {
			return -1, &mergeError{line: n.Content[i].Line, path: joinPath(path, "<<"),
				msg: duplicateMessage("<<", n.Content[at].Line)}
		}
		at = i
	}
	return at, nil
}

// mergeSources returns the mappings a merge key's value names: one mapping, or a list of them.
func mergeSources(path string, v *yaml.Node) ([]*yaml.Node, *mergeError) {
	const want = "a merge key (<<) takes a mapping or a list of mappings, such as <<: *base or <<: [*a, *b]"
	r := resolveAlias(v)
	switch {
	case r != nil && r.Kind == yaml.MappingNode:
		return []*yaml.Node{r}, nil
	case r != nil && r.Kind == yaml.SequenceNode:
		sources := make([]*yaml.Node, 0, len(r.Content))
		for _, item := range r.Content {
			ri := resolveAlias(item)
			if ri == nil || ri.Kind != yaml.MappingNode {
				return nil, &mergeError{line: item.Line, path: joinPath(path, "<<"), msg: want}
			}
			sources = append(sources, ri)
		}
		return sources, nil
	}
	return nil, &mergeError{line: v.Line, path: joinPath(path, "<<"), msg: want}
}

// hasMergeKey reports whether any mapping in n, aliases followed, has a merge key. It runs after
// the alias budget walk, which bounds it; aliased nodes are looked at once.
func hasMergeKey(n *yaml.Node, seen map[*yaml.Node]bool) bool {
	if n == nil {
		return false
	}
	if n.Kind == yaml.AliasNode {
		if seen == nil {
			seen = map[*yaml.Node]bool{}
		}
		if seen[n.Alias] {
			return false
		}
		seen[n.Alias] = true
		return hasMergeKey(n.Alias, seen)
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 && c.Value == "<<" && isMergeKey(c) {
			return true
		}
		if hasMergeKey(c, seen) {
			return true
		}
	}
	return false
}
