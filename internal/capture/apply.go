package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs one command with stdin and returns its standard output; an error carries its
// standard error. Tests run the commands inside a network namespace through it.
type Runner func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)

// Exec runs commands on this host, in the caller's network namespace.
func Exec(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Backend names the iptables commands of one flavour for both families.
type Backend struct {
	// Name is "nft" or "legacy".
	Name    string
	restore [2]string
	save    [2]string
}

// The iptables flavours Debian ships side by side.
const (
	BackendAuto   = "auto"
	BackendNFT    = "nft"
	BackendLegacy = "legacy"
)

// SelectBackend picks the commands for mode: "nft" or "legacy" by their explicit names, "auto" what
// `iptables --version` says the default iptables is, as istio-iptables decides.
func SelectBackend(ctx context.Context, run Runner, mode string) (Backend, error) {
	switch mode {
	case BackendNFT, BackendLegacy:
	case BackendAuto, "":
		out, err := run(ctx, nil, "iptables", "--version")
		if err != nil {
			return Backend{}, fmt.Errorf("choose the iptables backend: %w", err)
		}
		mode = BackendLegacy
		if strings.Contains(string(out), "nf_tables") {
			mode = BackendNFT
		}
	default:
		return Backend{}, fmt.Errorf("iptables backend %q: want nft, legacy or auto", mode)
	}
	b := Backend{Name: mode}
	for i, fam := range Families {
		b.restore[i] = strings.Replace(restoreName(fam), "tables-", "tables-"+mode+"-", 1)
		b.save[i] = strings.Replace(restoreName(fam), "-restore", "-"+mode+"-save", 1)
	}
	return b, nil
}

// Commands returns the restore and save commands the backend uses for fam.
func (b Backend) Commands(fam Family) (restore, save string) { return b.restore[fam], b.save[fam] }

// Tables applies and removes our rules through one backend.
type Tables struct {
	Backend Backend
	Run     Runner
	// IPv4Only leaves ip6tables alone, for a kernel without IPv6.
	IPv4Only bool
}

// families are the families t works on, IPv4 first.
func (t Tables) families() []Family {
	if t.IPv4Only {
		return Families[:1]
	}
	return Families[:]
}

// Setup installs o's rules for both families, replacing any of ours already there (left by a crash
// or an earlier setup), each family in one atomic iptables-restore. When IPv6 fails the IPv4 rules
// are removed again, so that a failed setup leaves nothing behind.
func (t Tables) Setup(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	for _, fam := range t.families() {
		old, err := t.save(ctx, fam)
		if err != nil {
			t.undo(ctx, fam)
			return err
		}
		if err := t.restore(ctx, fam, Replace(old, Rules(o, fam))); err != nil {
			t.undo(ctx, fam)
			return fmt.Errorf("set up %s capture: %w", fam, err)
		}
	}
	return nil
}

// undo removes the families set up before fam failed; its own errors add nothing to the first one.
func (t Tables) undo(ctx context.Context, failed Family) {
	for _, fam := range Families[:failed] {
		_ = t.teardown(ctx, fam)
	}
}

// Teardown removes every chain of ours and every jump to one, for both families; on tables without
// them it does nothing, so it may run any number of times.
func (t Tables) Teardown(ctx context.Context) error {
	var errs []error
	for _, fam := range t.families() {
		errs = append(errs, t.teardown(ctx, fam))
	}
	return errors.Join(errs...)
}

func (t Tables) teardown(ctx context.Context, fam Family) error {
	old, err := t.save(ctx, fam)
	if err != nil {
		return err
	}
	script := Replace(old, Ruleset{})
	if script == "" {
		return nil
	}
	if err := t.restore(ctx, fam, script); err != nil {
		return fmt.Errorf("tear down %s capture: %w", fam, err)
	}
	return nil
}

// Show returns our chains and the jumps to them as iptables-save prints them, for each family it
// works on.
func (t Tables) Show(ctx context.Context) (map[Family][]string, error) {
	out := map[Family][]string{}
	for _, fam := range t.families() {
		save, err := t.save(ctx, fam)
		if err != nil {
			return nil, err
		}
		out[fam] = Ours(save)
	}
	return out, nil
}

func (t Tables) save(ctx context.Context, fam Family) (string, error) {
	_, save := t.Backend.Commands(fam)
	out, err := t.Run(ctx, nil, save, "-t", "nat")
	if err != nil {
		return "", fmt.Errorf("read the %s nat table: %w", fam, err)
	}
	return string(out), nil
}

func (t Tables) restore(ctx context.Context, fam Family, script string) error {
	restore, _ := t.Backend.Commands(fam)
	// --wait: legacy iptables takes the xtables lock, which another tool (Docker, kube-proxy) may hold.
	_, err := t.Run(ctx, []byte(script), restore, "--noflush", "--wait")
	return err
}
