package yamlscan

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// scalar parses a plain or quoted scalar at byte col of line i, in a flow collection when flow
// is set; it returns the node and the byte just after it (after the last non-space of a plain
// scalar, after the closing quote of a quoted one).
func (p *Parser) scalar(i, col int, flow bool) (*yaml.Node, int) {
	s := p.text(i, col)
	n := p.node()
	n.Kind = yaml.ScalarNode
	n.Line, n.Column = p.position(i, col)
	switch s[0] {
	case '"':
		v, end := p.doubleQuoted(s)
		n.Value, n.Tag, n.Style = v, "!!str", yaml.DoubleQuotedStyle
		return n, col + end
	case '\'':
		v, end := p.singleQuoted(s)
		n.Value, n.Tag, n.Style = v, "!!str", yaml.SingleQuotedStyle
		return n, col + end
	}
	if !plainStart(s, flow) {
		p.fail()
	}
	end := plainEnd(s, flow)
	v := s[:end]
	tag, ok := resolvePlain(v)
	if !ok {
		p.fail()
	}
	n.Value, n.Tag = v, tag
	return n, col + end
}

// plainStart reports whether s may start a plain scalar: not with an indicator, except "-"
// followed by something other than a space (as in "-1").
func plainStart(s string, flow bool) bool {
	switch c := s[0]; c {
	case '-':
		return len(s) > 1 && s[1] != ' ' && !(flow && strings.IndexByte(",[]{}", s[1]) >= 0)
	case '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' ':
		return false
	}
	return true
}

// plainEnd returns the length of the plain scalar that starts s: up to ": " or a final ":", a
// comment, or in a flow collection any flow indicator, ":" or "?", trailing spaces cut.
func plainEnd(s string, flow bool) int {
	end := len(s)
scan:
	for k := 1; k < len(s); k++ {
		switch s[k] {
		case ':':
			if flow || k+1 == len(s) || s[k+1] == ' ' {
				end = k
				break scan
			}
		case '#':
			if s[k-1] == ' ' {
				end = k
				break scan
			}
		case ',', '[', ']', '{', '}', '?':
			// yaml.v3 ends a flow scalar at "?" in some places: it is left to it in all.
			if flow {
				end = k
				break scan
			}
		}
	}
	for end > 0 && s[end-1] == ' ' {
		end--
	}
	return end
}

// doubleQuoted reads the double-quoted scalar that starts s, which must end on this line; it
// returns the value and the length written. The common escapes are read here; the rest, and an
// escaped line break, are left to yaml.v3.
func (p *Parser) doubleQuoted(s string) (string, int) {
	var buf []byte
	from := 1
	for k := 1; k < len(s); k++ {
		switch s[k] {
		case '"':
			if buf == nil {
				return s[1:k], k + 1
			}
			return string(append(buf, s[from:k]...)), k + 1
		case '\\':
			if k+1 >= len(s) {
				p.fail()
			}
			buf = append(buf, s[from:k]...)
			var n int
			buf, n = p.escape(buf, s[k+1:])
			k += n
			from = k + 1
		}
	}
	p.fail()
	return "", 0
}

// escape appends the character escape e starts with (after its backslash) and returns how many
// bytes of e it took.
func (p *Parser) escape(buf []byte, e string) ([]byte, int) {
	switch e[0] {
	case '\\', '"', '/':
		return append(buf, e[0]), 1
	case 'n':
		return append(buf, '\n'), 1
	case 't':
		return append(buf, '\t'), 1
	case 'r':
		return append(buf, '\r'), 1
	case '0':
		return append(buf, 0), 1
	}
	digits := 0
	switch e[0] {
	case 'x':
		digits = 2
	case 'u':
		digits = 4
	case 'U':
		digits = 8
	}
	if digits == 0 || len(e) <= digits {
		p.fail()
	}
	v, err := strconv.ParseUint(e[1:1+digits], 16, 32)
	if err != nil || strings.ContainsAny(e[1:1+digits], "+-_") || (v >= 0xd800 && v <= 0xdfff) || v > 0x10ffff {
		p.fail()
	}
	return utf8.AppendRune(buf, rune(v)), 1 + digits
}

// singleQuoted reads the single-quoted scalar that starts s, which must end on this line.
func (p *Parser) singleQuoted(s string) (string, int) {
	var buf []byte
	from := 1
	for k := 1; k < len(s); k++ {
		if s[k] != '\'' {
			continue
		}
		if k+1 < len(s) && s[k+1] == '\'' {
			buf = append(buf, s[from:k+1]...)
			k++
			from = k + 1
			continue
		}
		if buf == nil {
			return s[1:k], k + 1
		}
		return string(append(buf, s[from:k]...)), k + 1
	}
	p.fail()
	return "", 0
}

// resolvePlain returns the tag yaml.v3 gives the plain scalar s, or false for the merge key and
// the forms whose reading is left to yaml.v3 (underscores in numbers, binary and octal numbers
// too large for ParseInt).
func resolvePlain(s string) (string, bool) {
	switch c := s[0]; {
	case c >= '0' && c <= '9', c == '+', c == '-':
		return resolveNumber(s)
	case c == '.':
		switch s {
		case ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF":
			return "!!float", true
		}
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return "!!float", true
		}
	case strings.IndexByte("yYnNtTfFoO~<", c) >= 0:
		switch s {
		case "true", "True", "TRUE", "false", "False", "FALSE":
			return "!!bool", true
		case "~", "null", "Null", "NULL":
			return "!!null", true
		case "<<":
			return "", false
		}
	}
	return "!!str", true
}

// resolveNumber is resolvePlain for what starts with a digit or a sign: an int, a float or a
// timestamp where yaml.v3 reads one, else a string.
func resolveNumber(s string) (string, bool) {
	switch s {
	case "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
		return "!!float", true
	}
	if isTimestamp(s) {
		return "!!timestamp", true
	}
	if strings.IndexByte(s, '_') >= 0 {
		return "", false
	}
	if !numberLike(s) {
		// Addresses and CIDRs land here: failing ParseInt would allocate an error for each.
		return "!!str", true
	}
	if _, err := strconv.ParseInt(s, 0, 64); err == nil {
		return "!!int", true
	}
	if _, err := strconv.ParseUint(s, 0, 64); err == nil {
		return "!!int", true
	}
	if floatShape(s) {
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return "!!float", true
		}
	}
	for _, prefix := range [...]string{"0b", "-0b", "0o", "-0o"} {
		if strings.HasPrefix(s, prefix) {
			return "", false
		}
	}
	return "!!str", true
}

// timestampLayouts are the YAML timestamp forms yaml.v3 reads from a plain scalar.
var timestampLayouts = [...]string{
	"2006-1-2T15:4:5.999999999Z07:00",
	"2006-1-2t15:4:5.999999999Z07:00",
	"2006-1-2 15:4:5.999999999",
	"2006-1-2",
}

// isTimestamp reports whether s, which starts with four digits and a dash, is a YAML timestamp.
func isTimestamp(s string) bool {
	if len(s) < 5 || s[4] != '-' {
		return false
	}
	for k := range 4 {
		if s[k] < '0' || s[k] > '9' {
			return false
		}
	}
	for _, layout := range timestampLayouts {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

// floatShape reports whether s is [-+]? (.digits | digits(.digits*)?) ([eE][-+]?digits)?.
func floatShape(s string) bool {
	k := 0
	if k < len(s) && (s[k] == '-' || s[k] == '+') {
		k++
	}
	digits := func() int {
		n := 0
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
			n++
		}
		return n
	}
	if k < len(s) && s[k] == '.' {
		k++
		if digits() == 0 {
			return false
		}
	} else {
		if digits() == 0 {
			return false
		}
		if k < len(s) && s[k] == '.' {
			k++
			digits()
		}
	}
	if k < len(s) && (s[k] == 'e' || s[k] == 'E') {
		k++
		if k < len(s) && (s[k] == '-' || s[k] == '+') {
			k++
		}
		if digits() == 0 {
			return false
		}
	}
	return k == len(s)
}

// numberLike reports whether s could be read by ParseInt or ParseUint in base 0, or pass
// floatShape: only such characters, and at most one dot.
func numberLike(s string) bool {
	dots := 0
	for k := 0; k < len(s); k++ {
		switch c := s[k]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		case c == 'x', c == 'X', c == 'o', c == 'O', c == '+', c == '-':
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return dots <= 1
}
