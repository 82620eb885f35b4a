package yamlscan

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// mapping parses a block mapping whose first key, already parsed, starts at byte col of line i
// and ends at byte after; every later key must start a line indented by col.
func (p *Parser) mapping(i, col int, key *yaml.Node, after int) (*yaml.Node, int) {
	m := p.node()
	m.Kind, m.Tag = yaml.MappingNode, "!!map"
	m.Line, m.Column = key.Line, key.Column
	mark := len(p.stack)
	start := col
	for {
		if after-start > maxKeyLen {
			p.fail()
		}
		p.stack = append(p.stack, key)
		colon := after + strings.IndexByte(p.text(i, after), ':')
		var v *yaml.Node
		v, i = p.value(i, colon+1, col)
		p.stack = append(p.stack, v)
		j, ind := p.next(i)
		if ind < col {
			i = j
			break
		}
		if ind > col || isEntry(p.text(j, col)) {
			// Deeper text after a complete value continues it (a multi-line scalar) or is an
			// error; an entry here is an error too: both are yaml.v3's to report.
			p.fail()
		}
		i, start = j, col
		key, after = p.scalar(i, col, false)
		if !isValueIndicator(p.text(i, after)) {
			p.fail()
		}
	}
	m.Content = p.collect(mark, nil)
	return m, i
}

// value parses what follows a mapping key's ":" at byte col of line i, in a mapping indented by
// indent: a value on the same line, a block below, a sequence at the mapping's own indentation
// (as "ports:\n- number: 80" writes it), or nothing, which is a null.
func (p *Parser) value(i, col, indent int) (*yaml.Node, int) {
	s := p.text(i, col)
	k := 0
	for k < len(s) && s[k] == ' ' {
		k++
	}
	if k == len(s) || s[k] == '#' {
		j, ind := p.next(i + 1)
		switch {
		case ind > indent:
			return p.block(j, ind)
		case ind == indent && isEntry(p.text(j, ind)):
			return p.sequenceAt(j, ind)
		}
		return p.null(i, col), i + 1
	}
	at := col + k
	switch {
	case isEntry(s[k:]):
		p.fail()
	case s[k] == '[' || s[k] == '{':
		n, rest := p.flow(i, at)
		p.endOfLine(rest)
		return n, i + 1
	}
	n, after := p.scalar(i, at, false)
	p.endOfLine(p.text(i, after))
	return n, i + 1
}

// null is the empty value yaml.v3 places just after the indicator that announced it.
func (p *Parser) null(i, col int) *yaml.Node {
	n := p.node()
	n.Kind, n.Tag = yaml.ScalarNode, "!!null"
	n.Line, n.Column = p.position(i, col)
	return n
}

// sequenceAt is sequence counted as one more level of nesting, for the sequences that value
// starts without going through block.
func (p *Parser) sequenceAt(i, col int) (*yaml.Node, int) {
	p.depth++
	if p.depth > maxDepth {
		p.fail()
	}
	defer func() { p.depth-- }()
	return p.sequence(i, col)
}

// sequence parses a block sequence whose first "-" is at byte col of line i.
func (p *Parser) sequence(i, col int) (*yaml.Node, int) {
	seq := p.node()
	seq.Kind, seq.Tag = yaml.SequenceNode, "!!seq"
	seq.Line, seq.Column = p.position(i, col)
	mark := len(p.stack)
	for {
		s := p.text(i, col+1)
		k := 0
		for k < len(s) && s[k] == ' ' {
			k++
		}
		var item *yaml.Node
		if k == len(s) || s[k] == '#' {
			if j, ind := p.next(i + 1); ind > col {
				item, i = p.block(j, ind)
			} else {
				item, i = p.null(i, col+1), i+1
			}
		} else {
			item, i = p.block(i, col+1+k)
		}
		p.stack = append(p.stack, item)
		j, ind := p.next(i)
		if ind > col {
			p.fail()
		}
		i = j
		if ind < col || !isEntry(p.text(j, col)) {
			break
		}
	}
	seq.Content = p.collect(mark, nil)
	return seq, i
}

// flow parses a flow sequence or mapping of scalars written on one line at byte col of line i;
// it returns the node and the rest of the line. Nested, multi-line and trailing-comma forms are
// left to yaml.v3.
func (p *Parser) flow(i, col int) (*yaml.Node, string) {
	s := p.text(i, col)
	n := p.node()
	n.Line, n.Column = p.position(i, col)
	n.Style = yaml.FlowStyle
	closer := byte(']')
	n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
	if s[0] == '{' {
		closer = '}'
		n.Kind, n.Tag = yaml.MappingNode, "!!map"
	}
	mark := len(p.stack)
	k := skipSpaces(s, 1)
	if k < len(s) && s[k] == closer {
		return n, s[k+1:]
	}
	for {
		item, after := p.flowScalar(i, col, s, k)
		p.stack = append(p.stack, item)
		k = skipSpaces(s, after-col)
		if closer == '}' {
			if k+1 >= len(s) || s[k] != ':' || s[k+1] != ' ' {
				p.fail()
			}
			v, after := p.flowScalar(i, col, s, skipSpaces(s, k+1))
			p.stack = append(p.stack, v)
			k = skipSpaces(s, after-col)
		}
		if k >= len(s) {
			p.fail()
		}
		if s[k] == closer {
			k++
			break
		}
		if s[k] != ',' {
			p.fail()
		}
		if k = skipSpaces(s, k+1); k < len(s) && s[k] == closer {
			p.fail()
		}
	}
	n.Content = p.collect(mark, nil)
	return n, s[k:]
}

// flowScalar parses the scalar at byte k of s, which is line i from byte col.
func (p *Parser) flowScalar(i, col int, s string, k int) (*yaml.Node, int) {
	if k >= len(s) || strings.IndexByte("[]{},:#", s[k]) >= 0 {
		p.fail()
	}
	return p.scalar(i, col+k, true)
}

func skipSpaces(s string, k int) int {
	for k < len(s) && s[k] == ' ' {
		k++
	}
	return k
}
