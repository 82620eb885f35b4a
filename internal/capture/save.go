package capture

import (
	"regexp"
	"slices"
	"strings"
)

// natSection is what iptables-save printed for the nat table, split the way Replace needs it.
type natSection struct {
	// chains of ours, as declared.
	chains []string
	// jumps are rules in other chains that lead to one of ours, without "-A".
	jumps []string
	// lines are our chain declarations, our rules and the jumps, as printed.
	lines []string
}

// parseNat reads iptables-save output and keeps what is ours in its nat table.
func parseNat(save string) natSection {
	var s natSection
	inNat := false
	for _, line := range strings.Split(save, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			inNat = line == "*nat"
		case !inNat:
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if isOurs(name) {
				s.chains = append(s.chains, name)
				s.lines = append(s.lines, line)
			}
		case strings.HasPrefix(line, "-A "):
			spec := line[len("-A "):]
			chain, _, _ := strings.Cut(spec, " ")
			switch {
			case isOurs(chain):
				s.lines = append(s.lines, line)
			case isOurs(target(spec)):
				s.jumps = append(s.jumps, spec)
				s.lines = append(s.lines, line)
			}
		}
	}
	return s
}

// isOurs reports whether chain is one Setup creates. The names are matched exactly, not by
// ChainPrefix, so that a chain someone else named MESHENTRY_SOMETHING, and the jumps to it,
// survive a teardown.
func isOurs(chain string) bool {
	switch chain {
	case ChainOutput, ChainRedirect, ChainDNSRedirect, ChainIncludeCIDRs:
		return true
	}
	return false
}

// target returns the chain a rule jumps or goes to, "" when it has none. iptables-save prints
// the target last, so the last -j or -g is taken: an earlier one is inside a quoted comment.
func target(spec string) string {
	f := strings.Fields(spec)
	for i := len(f) - 2; i >= 0; i-- {
		switch f[i] {
		case "-j", "--jump", "-g", "--goto":
			return f[i+1]
		}
	}
	return ""
}

// Ours returns the lines of iptables-save output that belong to us: our chains, their rules and
// the jumps to them from other chains.
func Ours(save string) []string { return parseNat(save).lines }

// Replace returns the iptables-restore --noflush input that turns the nat table printed by save
// into one with exactly next of ours: every old jump to a chain of ours deleted, our old chains
// flushed and removed, next's chains and rules added; everything else left as it is. It returns ""
// when there is nothing to remove and next is empty.
func Replace(save string, next Ruleset) string {
	old := parseNat(save)
	if len(old.chains) == 0 && len(old.jumps) == 0 && len(next.Chains) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("*nat\n")
	// Declaring a chain that exists flushes it under --noflush, so that it can be deleted, or
	// refilled, in the same transaction.
	declared := map[string]bool{}
	for _, c := range append(slices.Clone(old.chains), next.Chains...) {
		if !declared[c] {
			declared[c] = true
			b.WriteString(":" + c + " - [0:0]\n")
		}
	}
	for _, j := range old.jumps {
		b.WriteString("-D " + j + "\n")
	}
	for _, c := range old.chains {
		if !slices.Contains(next.Chains, c) {
			b.WriteString("-X " + c + "\n")
		}
	}
	for _, r := range next.Rules {
		b.WriteString("-A " + r + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// Canonical is iptables-save output without its comments and counters, and without tables that hold
// no rule and only ACCEPT policies: iptables-save -t nat creates the empty table on first use, which
// changes nothing a packet sees. Two Canonical outputs are equal when the rules are.
func Canonical(save string) string {
	var out, table []string
	empty := true
	for _, line := range strings.Split(save, "\n") {
		line = counters.ReplaceAllString(strings.TrimSpace(line), "[0:0]")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "*"):
			table, empty = nil, true
		case strings.HasPrefix(line, "-"), strings.HasPrefix(line, ":") && !strings.Contains(line, " ACCEPT "):
			empty = false
		}
		table = append(table, line)
		if line == "COMMIT" && !empty {
			out = append(out, table...)
		}
	}
	return strings.Join(out, "\n")
}
