package validate

import (
	"slices"
	"sort"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

// Analyzer is Analyze for a config analysed again and again as it changes a file at a time (a
// reload): it keeps the ServiceEntry hosts and address-less TCP ports of the last analysis,
// grouped, with the findings of each group, and redoes only the groups of the documents that
// came or went. Its findings equal Analyze's over the same documents. The checks of the other
// kinds (DestinationRule, VirtualService, Gateway), which look up hosts, are made anew, and only
// when the config has such documents. Not for concurrent use.
type Analyzer struct {
	opts     []AnalyzeOption
	dnsProxy bool
	// files are the ServiceEntries of each file last analysed, with their ME2002 findings.
	files map[string]*fileFacts
	// groups are every host's declarations (one per document) in load order; hostFound the
	// findings of the hosts declared more than once.
	groups    map[string][]hostDecl
	hostFound map[string]*hostFindings
	// claims are the address-less opaque TCP ports per number, in load order, and portFound
	// their ME2003 findings.
	claims    map[uint32][]tcpClaim
	portFound map[uint32][]diag.Diagnostic
}

// fileFacts are one file's documents as last analysed (all kinds), with the ME2002 findings
// of its ServiceEntries; others says some document is of another kind.
type fileFacts struct {
	docs   []*config.Document
	none   []diag.Diagnostic
	others bool
}

// hostFindings are the findings about one host declared by several entries, by check, so that
// they come out in Analyze's order.
type hostFindings struct {
	shared, protocols, twice []diag.Diagnostic
}

// NewAnalyzer returns an Analyzer with nothing carried yet.
func NewAnalyzer(opts ...AnalyzeOption) *Analyzer {
	a := &analysis{}
	for _, opt := range opts {
		opt(a)
	}
	z := &Analyzer{opts: opts, dnsProxy: a.dnsProxy}
	z.reset()
	return z
}

func (z *Analyzer) reset() {
	z.files = map[string]*fileFacts{}
	z.groups = map[string][]hostDecl{}
	z.hostFound = map[string]*hostFindings{}
	z.claims = map[uint32][]tcpClaim{}
	z.portFound = map[uint32][]diag.Diagnostic{}
}

// fileRun is one file's documents in the documents analysed.
type fileRun struct {
	file string
	docs []*config.Document
}

// Analyze returns Analyze(docs) with the options given to NewAnalyzer, redoing what the
// documents that differ from the last call's touch. The documents are numbered in load order
// (Document.Order), as config.Load numbers them, and are never written once analysed.
func (z *Analyzer) Analyze(docs []*config.Document) []diag.Diagnostic {
	runs, ok := fileRuns(docs)
	if !ok {
		// A file named twice: its documents cannot be told apart by file, so the carried
		// state is dropped and the documents analysed whole.
		z.reset()
		return Analyze(docs, z.opts...)
	}
	// With nothing carried every host is touched: the groups are sized once and all redone,
	// rather than grown a key at a time and marked in a set as large (at 100,000 entries the
	// two maps were most of the first analysis).
	ports := map[uint32]bool{}
	var hosts map[string]bool
	if len(z.files) == 0 && len(z.groups) == 0 {
		z.groups = make(map[string][]hostDecl, hostCount(docs))
	} else {
		hosts = map[string]bool{}
	}
	seen := make(map[string]bool, len(runs))
	others := false
	for _, r := range runs {
		seen[r.file] = true
		old := z.files[r.file]
		if old == nil || !slices.Equal(old.docs, r.docs) {
			if old != nil {
				z.drop(old.docs, hosts, ports)
			}
			old = z.add(r.docs, hosts, ports)
			z.files[r.file] = old
		}
		others = others || old.others
	}
	for f, old := range z.files {
		if !seen[f] {
			z.drop(old.docs, hosts, ports)
			delete(z.files, f)
		}
	}
	if hosts == nil {
		for key, group := range z.groups {
			z.redoGroup(key, group)
		}
	}
	for key := range hosts {
		z.redoHost(key)
	}
	for n := range ports {
		z.redoPort(n)
	}
	return z.findings(docs, runs, others)
}

// fileRuns splits docs by file, in load order; ok is false when a file's documents are not
// together, or a document is nil.
func fileRuns(docs []*config.Document) (runs []fileRun, ok bool) {
	files := map[string]bool{}
	if slices.Contains(docs, nil) {
		return nil, false
	}
	for i := 0; i < len(docs); {
		j := i
		for j < len(docs) && docs[j].File == docs[i].File {
			j++
		}
		if files[docs[i].File] {
			return nil, false
		}
		files[docs[i].File] = true
		runs = append(runs, fileRun{file: docs[i].File, docs: docs[i:j]})
		i = j
	}
	return runs, true
}

// declsOf are the host declarations of one entry, one per host key, as hostGroups keeps them.
func declsOf(d *config.Document) []hostDecl {
	se := d.ServiceEntry()
	aud := exportedTo(d, se.ExportTo)
	out := make([]hostDecl, 0, len(se.Hosts))
	for i, h := range se.Hosts {
		out = append(out, hostDecl{doc: d, index: i, host: h, audience: aud})
	}
	return out
}

// claimsOf are the address-less opaque TCP ports of one entry, as portClashes collects them.
func claimsOf(d *config.Document) []tcpClaim {
	se := d.ServiceEntry()
	aud := exportedTo(d, se.ExportTo)
	if len(se.Addresses) > 0 || aud.empty() {
		return nil
	}
	var out []tcpClaim
	for i, p := range se.Ports {
		if p != nil && isOpaqueTCP(p.Protocol) {
			out = append(out, tcpClaim{doc: d, index: i, port: p, audience: aud})
		}
	}
	return out
}

// drop takes the ServiceEntries among docs out of the groups, marking the hosts and ports
// they touch.
func (z *Analyzer) drop(docs []*config.Document, hosts map[string]bool, ports map[uint32]bool) {
	for _, d := range docs {
		if d.ServiceEntry() == nil {
			continue
		}
		for _, h := range d.ServiceEntry().Hosts {
			key := normalHost(h)
			hosts[key] = true
			z.groups[key] = slices.DeleteFunc(z.groups[key], func(o hostDecl) bool { return o.doc == d })
		}
		for _, c := range claimsOf(d) {
			ports[c.port.Number] = true
			z.claims[c.port.Number] = slices.DeleteFunc(z.claims[c.port.Number], func(o tcpClaim) bool { return o.doc == d })
		}
	}
}

// hostCount counts the hosts the ServiceEntries among docs declare.
func hostCount(docs []*config.Document) int {
	n := 0
	for _, d := range docs {
		if se := d.ServiceEntry(); se != nil {
			n += len(se.Hosts)
		}
	}
	return n
}

// add puts the ServiceEntries among docs into the groups in load order, marking the hosts (when
// hosts is not nil: nil is every host) and ports they touch, and returns the file's facts.
func (z *Analyzer) add(docs []*config.Document, hosts map[string]bool, ports map[uint32]bool) *fileFacts {
	ff := &fileFacts{docs: slices.Clone(docs)}
	a := &analysis{dnsProxy: z.dnsProxy}
	// A host's first declaration, as most hosts have only one, is a slot of this slab rather
	// than a slice of its own; capped at one, so that a second declaration copies it out.
	slab := make([]hostDecl, 0, hostCount(docs))
	for _, d := range docs {
		if d.ServiceEntry() == nil {
			ff.others = true
			continue
		}
		for _, h := range declsOf(d) {
			key := normalHost(h.host)
			if hosts != nil {
				hosts[key] = true
			}
			group := z.groups[key]
			if len(group) == 0 {
				slab = append(slab, h)
				z.groups[key] = slab[len(slab)-1 : len(slab) : len(slab)]
				continue
			}
			if slices.ContainsFunc(group, func(o hostDecl) bool { return o.doc == d }) {
				continue // the document's first declaration of the host stands for it
			}
			at := sort.Search(len(group), func(i int) bool { return group[i].doc.Order > d.Order })
			z.groups[key] = slices.Insert(group, at, h)
		}
		for _, c := range claimsOf(d) {
			n := c.port.Number
			ports[n] = true
			list := z.claims[n]
			at := sort.Search(len(list), func(i int) bool {
				return list[i].doc.Order > d.Order || list[i].doc.Order == d.Order && list[i].index > c.index
			})
			z.claims[n] = slices.Insert(list, at, c)
		}
		a.openNonePortsOf(d)
	}
	ff.none = a.diags
	return ff
}

// redoHost makes the findings of one host anew.
func (z *Analyzer) redoHost(key string) { z.redoGroup(key, z.groups[key]) }

// redoGroup is redoHost given the host's group.
func (z *Analyzer) redoGroup(key string, group []hostDecl) {
	if len(group) == 0 {
		delete(z.groups, key)
	}
	if len(group) < 2 {
		delete(z.hostFound, key)
		return
	}
	var f hostFindings
	a := &analysis{dnsProxy: z.dnsProxy}
	a.sharedHostsIn(group)
	f.shared, a.diags = a.diags, nil
	a.conflictingProtocolsIn(group)
	f.protocols, a.diags = a.diags, nil
	a.hostTwiceIn(group)
	f.twice = a.diags
	z.hostFound[key] = &f
}

// redoPort makes the findings of one port number anew.
func (z *Analyzer) redoPort(n uint32) {
	claims := z.claims[n]
	if len(claims) == 0 {
		delete(z.claims, n)
		delete(z.portFound, n)
		return
	}
	a := &analysis{dnsProxy: z.dnsProxy}
	a.portClashesAt(n, slices.Clone(claims))
	if len(a.diags) == 0 {
		delete(z.portFound, n)
		return
	}
	z.portFound[n] = a.diags
}

// findings lists the carried findings in Analyze's order, then those of the other kinds.
func (z *Analyzer) findings(docs []*config.Document, runs []fileRun, others bool) []diag.Diagnostic {
	var out []diag.Diagnostic
	numbers := make([]uint32, 0, len(z.portFound))
	for n := range z.portFound {
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	for _, n := range numbers {
		out = append(out, z.portFound[n]...)
	}
	for _, r := range runs {
		if ff := z.files[r.file]; ff != nil {
			out = append(out, ff.none...)
		}
	}
	keys := make([]string, 0, len(z.hostFound))
	for k := range z.hostFound {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, z.hostFound[k].shared...)
	}
	for _, k := range keys {
		out = append(out, z.hostFound[k].protocols...)
	}
	for _, k := range keys {
		out = append(out, z.hostFound[k].twice...)
	}
	if others {
		out = append(out, analyzeOthers(docs, z.opts)...)
	}
	return out
}
