package validate

import (
	"sort"
	"strconv"
	"strings"

	"github.com/meshentry/meshentry/internal/config"
)

// audience is the set of namespaces a resource is exported to.
type audience struct {
	all        bool
	namespaces map[string]bool
}

// exportedTo reads an exportTo list: absent or "*" is every namespace, "." the document's own, "~"
// nobody, anything else that namespace.
func exportedTo(d *config.Document, entries []string) audience {
	if len(entries) == 0 {
		return audience{all: true}
	}
	a := audience{namespaces: map[string]bool{}}
	for _, e := range entries {
		switch e {
		case exportPublic:
			a.all = true
		case exportPrivate:
			a.namespaces[d.Namespace] = true
		case exportNone:
		default:
			a.namespaces[e] = true
		}
	}
	return a
}

func (a audience) empty() bool { return !a.all && len(a.namespaces) == 0 }

func (a audience) includes(ns string) bool { return a.all || a.namespaces[ns] }

// overlap reports whether some namespace sees both audiences, and names where for messages.
func (a audience) overlap(b audience) (string, bool) {
	switch {
	case a.empty() || b.empty():
		return "", false
	case a.all && b.all:
		return "every namespace", true
	case a.all:
		return namespaceList(b), true
	case b.all:
		return namespaceList(a), true
	}
	var both []string
	for ns := range a.namespaces {
		if b.namespaces[ns] {
			both = append(both, ns)
		}
	}
	if len(both) == 0 {
		return "", false
	}
	return namespaceList(audience{namespaces: setOf(both)}), true
}

func namespaceList(a audience) string {
	names := sortedKeys(a.namespaces)
	for i, n := range names {
		names[i] = strconv.Quote(n)
	}
	if len(names) == 1 {
		return "namespace " + names[0]
	}
	return "namespaces " + strings.Join(names, ", ")
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// normalHost is the form hosts are compared in: DNS is case-insensitive and "host." is "host".
func normalHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// hostsOverlap reports whether two hosts, either of which may start with a wildcard, can name the
// same server: "*.example.com" covers "api.example.com" (not "example.com"), and "*" covers all.
func hostsOverlap(a, b string) bool {
	a, b = normalHost(a), normalHost(b)
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case a == b:
		return true
	case aw && bw:
		sa, sb := a[1:], b[1:]
		return strings.HasSuffix(sa, sb) || strings.HasSuffix(sb, sa)
	case aw:
		return len(b) > len(a)-1 && strings.HasSuffix(b, a[1:])
	case bw:
		return len(a) > len(b)-1 && strings.HasSuffix(a, b[1:])
	}
	return false
}

// olderFirst sorts documents so that the one winning conflicts (config.Document.OlderThan) is first.
func olderFirst(docs []*config.Document) {
	sort.SliceStable(docs, func(i, j int) bool { return docs[i].OlderThan(docs[j]) })
}
