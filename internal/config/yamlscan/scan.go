// Package yamlscan parses the block-style subset of YAML that configuration files are written in
// straight into yaml.v3 nodes, the same nodes yaml.v3 would build but with far fewer allocations.
// Anything outside the subset (anchors, aliases, tags, block scalars, multi-line scalars, tabs,
// carriage returns, a BOM, directives, merge keys, flow collections that nest or span lines, odd
// indentation) makes Parse refuse the whole input, so the caller hands it to yaml.v3 instead and
// every error stays yaml.v3's own.
package yamlscan

import (
	"math"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Bounds of the subset: deeper nesting and longer keys go to yaml.v3, which has its own limits
// and messages for them (a simple key may span at most 1024 characters there).
const (
	maxDepth  = 64
	maxKeyLen = 1000
)

// line is one line of the input: its bytes are src[start:end], without the newline.
type line struct {
	start, end int32
	// indent is the count of leading spaces; -1 for a blank or comment-only line, -2 for a
	// document start marker ("---").
	indent int32
	// wide says the line holds bytes outside ASCII, so columns must count runes.
	wide bool
}

const (
	indentBlank  = -1
	indentMarker = -2
)

// Parser parses documents; its buffers are reused from one Parse to the next, so a Parser is
// for one goroutine, and the nodes of one Parse are valid only until the next.
type Parser struct {
	src   string
	lines []line
	// nodes and ptrs are slabs the nodes and their Content slices are cut from.
	nodes []yaml.Node
	ptrs  []*yaml.Node
	// stack holds the children of the collections being parsed, until each is complete.
	stack []*yaml.Node
	docs  []*yaml.Node
	depth int
	// batch, emit and over steer Parse's passes (see there).
	batch int
	emit  func([]*yaml.Node)
	over  bool
}

// refuse unwinds a parse that met something outside the subset.
type refuse struct{}

// Parse hands emit the document nodes of src as yaml.v3's Decoder returns them one by one,
// comments left out, in order and in batches of at most batch, and returns true; or it returns
// false, having called emit for none, when src is outside the subset. The nodes' strings share
// src, and the nodes of a batch are reused once emit returns. A file of more than one batch is
// parsed twice, first only to check it, so that its nodes never all exist at once.
func (p *Parser) Parse(src string, batch int, emit func(docs []*yaml.Node)) (ok bool) {
	p.src, p.batch, p.emit, p.over = src, max(1, batch), nil, false
	p.restart()
	defer func() {
		if r := recover(); r != nil {
			if _, is := r.(refuse); !is {
				panic(r)
			}
			ok = false
		}
		p.src, p.emit = "", nil
	}()
	if len(src) > math.MaxInt32 || !p.split() {
		return false
	}
	p.stream()
	if p.over {
		p.restart()
		p.emit = emit
		p.stream()
	}
	if len(p.docs) > 0 {
		emit(p.docs)
	}
	p.restart()
	return true
}

// restart empties the slabs and the documents for another pass or batch.
func (p *Parser) restart() {
	clear(p.docs)
	p.docs, p.depth = p.docs[:0], 0
	p.nodes, p.ptrs, p.stack = p.nodes[:0], p.ptrs[:0], p.stack[:0]
}

// done takes in a finished document: a full batch goes to emit, or, on the checking pass, is
// dropped and marks the input as one to parse again.
func (p *Parser) done(doc *yaml.Node) {
	p.docs = append(p.docs, doc)
	if len(p.docs) < p.batch {
		return
	}
	if p.emit != nil {
		p.emit(p.docs)
	} else {
		p.over = true
	}
	p.restart()
}

// split cuts src into lines and refuses bytes outside the subset: control characters (tab and
// carriage return among them), DEL, and any rune yaml.v3 treats as a break or does not print.
func (p *Parser) split() bool {
	p.lines = p.lines[:0]
	src := p.src
	start, wide := 0, false
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case c == '\n':
			p.lines = append(p.lines, p.classify(start, i, wide))
			start, wide = i+1, false
		case c < 0x20 || c == 0x7f:
			return false
		case c >= 0x80:
			wide = true
		}
	}
	p.lines = append(p.lines, p.classify(start, len(src), wide))
	for i := range p.lines {
		if p.lines[i].wide && !printable(src[p.lines[i].start:p.lines[i].end]) {
			return false
		}
	}
	return true
}

// printable reports whether s is valid UTF-8 of runes yaml.v3 prints and does not break lines on.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r < 0x80:
		case r < 0xa0, r == 0x2028, r == 0x2029, r == 0xfeff, r > 0xfffd, r >= 0xd800 && r < 0xe000:
			return false
		}
	}
	return true
}

// classify measures a line's indentation and refuses the lines that would need YAML's other
// constructs: directives, document end markers and text after a document start marker.
func (p *Parser) classify(start, end int, wide bool) line {
	l := line{start: int32(start), end: int32(end), wide: wide}
	s := p.src[start:end]
	n := 0
	for n < len(s) && s[n] == ' ' {
		n++
	}
	switch {
	case n == len(s) || s[n] == '#':
		l.indent = indentBlank
	case len(s) >= 3 && (s[:3] == "---" || s[:3] == "..."):
		rest := s[3:]
		if s[0] == '.' || !blankOrComment(rest) {
			// "..." ends a document and "--- value" starts one with content: neither is in the
			// subset; "---x" would be a plain scalar.
			l.indent = indentMarker - 1
			return l
		}
		l.indent = indentMarker
	case s[0] == '%':
		l.indent = indentMarker - 1
	default:
		l.indent = int32(n)
	}
	return l
}

// blankOrComment reports whether rest is empty, spaces, or spaces then a comment.
func blankOrComment(rest string) bool {
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case ' ':
		case '#':
			return i > 0
		default:
			return false
		}
	}
	return true
}

func (p *Parser) fail() { panic(refuse{}) }

// stream parses the documents, as yaml.v3's Decoder would return them in turn.
func (p *Parser) stream() {
	for i := range p.lines {
		if p.lines[i].indent < indentMarker {
			p.fail()
		}
	}
	i := p.skip(0)
	for i < len(p.lines) {
		doc := p.node()
		doc.Kind = yaml.DocumentNode
		if p.lines[i].indent == indentMarker {
			doc.Line, doc.Column = i+1, 1
			i = p.skip(i + 1)
			if i == len(p.lines) || p.lines[i].indent == indentMarker {
				// An empty document holds a null where the next token starts.
				null := p.node()
				null.Kind, null.Tag = yaml.ScalarNode, "!!null"
				null.Line, null.Column = p.tokenAt(i)
				doc.Content = p.collect(len(p.stack), null)
				p.done(doc)
				continue
			}
		} else {
			doc.Line, doc.Column = p.position(i, int(p.lines[i].indent))
		}
		var root *yaml.Node
		root, i = p.block(i, int(p.lines[i].indent))
		if i = p.skip(i); i < len(p.lines) && p.lines[i].indent != indentMarker {
			p.fail() // content after the root node ends
		}
		doc.Content = p.collect(len(p.stack), root)
		p.done(doc)
	}
}

// tokenAt is where the token at line i starts, or where the stream ends when i is past the last.
func (p *Parser) tokenAt(i int) (int, int) {
	if i < len(p.lines) {
		return i + 1, 1
	}
	// yaml.v3 ends the stream on a line of its own, after a last line without a newline.
	last := len(p.lines) - 1
	if p.lines[last].end > p.lines[last].start {
		return last + 2, 1
	}
	return last + 1, 1
}

// skip returns the first line from i that is not blank or a comment.
func (p *Parser) skip(i int) int {
	for i < len(p.lines) && p.lines[i].indent == indentBlank {
		i++
	}
	return i
}

// position is the 1-based line and column of byte col of line i; columns count runes.
func (p *Parser) position(i, col int) (int, int) {
	l := p.lines[i]
	if !l.wide {
		return i + 1, col + 1
	}
	return i + 1, utf8.RuneCountInString(p.src[l.start:int(l.start)+col]) + 1
}

// node cuts a zeroed node from the slab.
func (p *Parser) node() *yaml.Node {
	if len(p.nodes) == cap(p.nodes) {
		// A full slab is left to the nodes that point into it; a new one takes over.
		p.nodes = make([]yaml.Node, 0, max(256, 2*cap(p.nodes)))
	}
	p.nodes = p.nodes[:len(p.nodes)+1]
	n := &p.nodes[len(p.nodes)-1]
	*n = yaml.Node{}
	return n
}

// collect returns the children pushed on the stack since mark, plus extra when not nil, as a
// Content slice cut from the pointer slab, and pops them.
func (p *Parser) collect(mark int, extra *yaml.Node) []*yaml.Node {
	if extra != nil {
		p.stack = append(p.stack, extra)
	}
	kids := p.stack[mark:]
	if len(kids) == 0 {
		return nil
	}
	if cap(p.ptrs)-len(p.ptrs) < len(kids) {
		p.ptrs = make([]*yaml.Node, 0, max(4096, 2*cap(p.ptrs), len(kids)))
	}
	at := len(p.ptrs)
	p.ptrs = append(p.ptrs, kids...)
	clear(p.stack[mark:])
	p.stack = p.stack[:mark]
	// The capacity is cut so that an append by a caller copies instead of overwriting a neighbour.
	return p.ptrs[at:len(p.ptrs):len(p.ptrs)]
}

// text is line i from byte col on.
func (p *Parser) text(i, col int) string {
	l := p.lines[i]
	return p.src[int(l.start)+col : l.end]
}

// block parses the node that starts at byte col of line i and returns it and the line after it.
func (p *Parser) block(i, col int) (*yaml.Node, int) {
	p.depth++
	if p.depth > maxDepth {
		p.fail()
	}
	defer func() { p.depth-- }()
	s := p.text(i, col)
	if isEntry(s) {
		return p.sequence(i, col)
	}
	if s[0] == '[' || s[0] == '{' {
		n, rest := p.flow(i, col)
		p.endOfLine(rest)
		return n, i + 1
	}
	key, after := p.scalar(i, col, false)
	if isValueIndicator(p.text(i, after)) {
		return p.mapping(i, col, key, after)
	}
	p.endOfLine(p.text(i, after))
	return key, i + 1
}

// isEntry reports whether s starts with a block sequence entry: "-" then a space or the end.
func isEntry(s string) bool { return len(s) > 0 && s[0] == '-' && (len(s) == 1 || s[1] == ' ') }

// isValueIndicator reports whether s, after optional spaces, starts with ": " or ends with ":".
func isValueIndicator(s string) bool {
	i := 0
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i < len(s) && s[i] == ':' && (i+1 == len(s) || s[i+1] == ' ')
}

// endOfLine refuses anything but spaces and a comment after a complete value.
func (p *Parser) endOfLine(rest string) {
	if !blankOrComment(rest) {
		p.fail()
	}
}

// next returns the next content line after i, and its indentation: -1 at a document marker or
// the end of the input, which ends every block.
func (p *Parser) next(i int) (int, int) {
	i = p.skip(i)
	if i == len(p.lines) || p.lines[i].indent == indentMarker {
		return i, -1
	}
	return i, int(p.lines[i].indent)
}
