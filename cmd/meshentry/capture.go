package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/capture"
)

// captureFlags are the options of `capture setup` and of `run --capture-setup`, named as
// istio-iptables' options are known to Istio users.
type captureFlags struct {
	capturePort  uint16
	dnsPort      uint16
	proxyUID     string
	proxyGID     string
	includeCIDRs string
	excludeCIDRs string
	includePorts string
	excludePorts string
	backend      string
}

// register adds the flags. forRun registers them for `run --capture-setup`, whose capture port, DNS
// port and proxy UID default to the running proxy's own.
func (c *captureFlags) register(fl *pflag.FlagSet, forRun bool) {
	capturePort, dnsPort, uid := uint16(capture.DefaultCapturePort), uint16(capture.DefaultDNSPort), strconv.Itoa(capture.DefaultProxyUID)
	captureHelp := "port that outbound TCP is redirected to (run's --capture-listen); Istio's outbound capture port"
	dnsHelp := "port that outbound DNS (UDP and TCP to port 53) is redirected to (run's --dns-listen); 0 leaves DNS alone"
	uidHelp := "user (number or name) whose traffic is never redirected: the proxy's, so it does not loop; -1 for none"
	if forRun {
		capturePort, dnsPort, uid = 0, 0, ""
		captureHelp += " (default: --capture-listen's port)"
		dnsHelp += " (default: the DNS proxy's port when it runs, else 0)"
		uidHelp += " (default: this process's UID)"
	}
	fl.Uint16Var(&c.capturePort, "capture-port", capturePort, captureHelp)
	fl.Uint16Var(&c.dnsPort, "dns-port", dnsPort, dnsHelp)
	fl.StringVar(&c.proxyUID, "proxy-uid", uid, uidHelp)
	fl.StringVar(&c.proxyGID, "proxy-gid", "", "group (number or name) whose traffic is never redirected (default: the --proxy-uid user's group, or its number as istio-iptables does); -1 for none")
	fl.StringVar(&c.includeCIDRs, "include-cidrs", "*", "comma-separated destination CIDRs to redirect; * is every destination, empty none (DNS only)")
	fl.StringVar(&c.excludeCIDRs, "exclude-cidrs", "", "comma-separated destination CIDRs never redirected")
	fl.StringVar(&c.includePorts, "include-ports", "", "comma-separated destination ports or ranges (8000-8100) to redirect; empty is every port")
	fl.StringVar(&c.excludePorts, "exclude-ports", "", "comma-separated destination ports or ranges never redirected")
	registerBackend(fl, &c.backend)
}

// registerBackend adds --iptables, which every capture command takes.
func registerBackend(fl *pflag.FlagSet, backend *string) {
	fl.StringVar(backend, "iptables", capture.BackendAuto, "nft or legacy; auto uses the one iptables --version names, as istio-iptables does")
}

// options reads the flags into capture.Options.
func (c *captureFlags) options() (capture.Options, error) {
	o := capture.Options{CapturePort: c.capturePort, DNSPort: c.dnsPort}
	var err error
	if o.ProxyUID, err = lookupID(c.proxyUID, "user"); err != nil {
		return o, usageError("--proxy-uid: %v", err)
	}
	o.ProxyGID = o.ProxyUID
	if u, err := user.Lookup(c.proxyUID); c.proxyGID == "" && err == nil {
		// A user named rather than numbered brings its own primary group.
		o.ProxyGID, _ = strconv.Atoi(u.Gid)
	}
	if c.proxyGID != "" {
		if o.ProxyGID, err = lookupID(c.proxyGID, "group"); err != nil {
			return o, usageError("--proxy-gid: %v", err)
		}
	}
	if o.IncludeCIDRs, o.AllCIDRs, err = capture.ParseCIDRs(c.includeCIDRs); err != nil {
		return o, usageError("--include-cidrs: %v", err)
	}
	if o.ExcludeCIDRs, _, err = capture.ParseCIDRs(c.excludeCIDRs); err != nil {
		return o, usageError("--exclude-cidrs: %v", err)
	}
	if o.IncludePorts, err = capture.ParsePorts(c.includePorts); err != nil {
		return o, usageError("--include-ports: %v", err)
	}
	if o.ExcludePorts, err = capture.ParsePorts(c.excludePorts); err != nil {
		return o, usageError("--exclude-ports: %v", err)
	}
	if err := o.Validate(); err != nil {
		return o, usageError("capture: %v", err)
	}
	return o, nil
}

// lookupID reads a numeric ID or looks a user or group name up; -1 is none.
func lookupID(s, kind string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < -1 {
			return 0, fmt.Errorf("%s ID %d is negative", kind, n)
		}
		return n, nil
	}
	var id string
	if kind == "user" {
		u, err := user.Lookup(s)
		if err != nil {
			return 0, err
		}
		id = u.Uid
	} else {
		g, err := user.LookupGroup(s)
		if err != nil {
			return 0, err
		}
		id = g.Gid
	}
	return strconv.Atoi(id)
}

// tables picks the iptables backend the flag names.
func (c *captureFlags) tables(ctx context.Context) (capture.Tables, error) {
	b, err := capture.SelectBackend(ctx, capture.Exec, c.backend)
	if err != nil {
		return capture.Tables{}, &exitError{code: 2, err: err}
	}
	// Without IPv6 in the kernel there is no ip6tables nat to write to, and nothing to capture there.
	_, noIPv6 := os.Stat("/proc/net/if_inet6")
	return capture.Tables{Backend: b, Run: capture.Exec, IPv4Only: noIPv6 != nil}, nil
}

// iptablesTimeout bounds one setup or teardown: iptables-restore --wait may otherwise wait forever
// for a lock another tool holds.
const iptablesTimeout = 30 * time.Second

func newCaptureCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "capture setup|teardown|show",
		Short: "Install, remove or print the iptables rules that redirect outbound traffic to the proxy (Istio's istio-iptables)",
		Args:  cobra.NoArgs,
	}
	var f captureFlags
	var dryRun bool
	setup := &cobra.Command{
		Use:   "setup",
		Short: "Redirect outbound TCP to --capture-port and DNS to --dns-port, replacing any earlier rules of ours",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options()
			if err != nil {
				return err
			}
			if dryRun {
				fmt.Fprint(cmd.OutOrStdout(), capture.DryRun(o))
				return nil
			}
			return withTables(cmd, &f, func(ctx context.Context, t capture.Tables) error { return t.Setup(ctx, o) })
		},
	}
	f.register(setup.Flags(), false)
	setup.Flags().BoolVar(&dryRun, "dry-run", false, "print the iptables-restore input for IPv4 and IPv6 instead of applying it")
	teardown := &cobra.Command{
		Use:   "teardown",
		Short: "Remove every chain of ours and every jump to one; nothing to remove is not an error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withTables(cmd, &f, func(ctx context.Context, t capture.Tables) error { return t.Teardown(ctx) })
		},
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print our chains and the jumps to them as they are now, for IPv4 and IPv6",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withTables(cmd, &f, func(ctx context.Context, t capture.Tables) error {
				return printShown(ctx, cmd.OutOrStdout(), t)
			})
		},
	}
	for _, c := range []*cobra.Command{teardown, show} {
		registerBackend(c.Flags(), &f.backend)
	}
	cmd.AddCommand(setup, teardown, show)
	return cmd
}

// withTables runs fn on the backend the flags choose, bounded by iptablesTimeout; its failure is
// exit status 1.
func withTables(cmd *cobra.Command, f *captureFlags, fn func(context.Context, capture.Tables) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), iptablesTimeout)
	defer cancel()
	t, err := f.tables(ctx)
	if err != nil {
		return err
	}
	if err := fn(ctx, t); err != nil {
		return &exitError{code: 1, err: err}
	}
	return nil
}

func printShown(ctx context.Context, w io.Writer, t capture.Tables) error {
	shown, err := t.Show(ctx)
	if err != nil {
		return err
	}
	for i, fam := range capture.Families {
		if t.IPv4Only && fam == capture.IPv6 {
			break
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		restore, _ := t.Backend.Commands(fam)
		fmt.Fprintf(w, "# %s (%s)\n", fam, strings.TrimSuffix(restore, "-restore"))
		if len(shown[fam]) == 0 {
			fmt.Fprintln(w, "# no rules of ours")
		}
		for _, l := range shown[fam] {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}

// captureRunFlags are `run --capture-setup` and the setup's options.
type captureRunFlags struct {
	setup bool
	captureFlags
}

func (c *captureRunFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&c.setup, "capture-setup", false, "install the capture iptables rules at start (as capture setup does, with its flags) and remove them at exit, SIGTERM and SIGINT included; needs CAP_NET_ADMIN")
	c.captureFlags.register(fl, true)
}

// start installs the rules when --capture-setup asks, after the listeners are bound so that no
// redirected connection finds the port closed, and returns what removes them at exit. The capture
// port defaults to --capture-listen's, the DNS port to dnsPort (the DNS proxy's; 0 when there is
// none, so that DNS is not sent where nothing answers), the proxy UID to this process's own.
func (c *captureRunFlags) start(ctx context.Context, fl *pflag.FlagSet, log *slog.Logger, captureLn net.Listener, dnsPort uint16) (func(), error) {
	if !c.setup {
		return func() {}, nil
	}
	if captureLn == nil {
		return nil, usageError("--capture-setup needs --capture-listen, or redirected connections find nothing listening")
	}
	if !fl.Changed("capture-port") {
		c.capturePort = uint16(captureLn.Addr().(*net.TCPAddr).Port)
	}
	if !fl.Changed("dns-port") {
		c.dnsPort = dnsPort
	}
	if c.proxyUID == "" {
		c.proxyUID = strconv.Itoa(os.Getuid())
		if c.proxyGID == "" {
			c.proxyGID = strconv.Itoa(os.Getgid())
		}
	}
	if a := captureLn.Addr().(*net.TCPAddr); a.IP.To4() != nil && c.includeCIDRs != "" {
		// REDIRECT sends IPv6 to [::1]:port, which an IPv4 socket does not take.
		log.Warn("the capture listener takes IPv4 only, so redirected IPv6 connections will be refused; listen on :PORT for both, or narrow --include-cidrs to IPv4", "capture_listen", a.String())
	}
	if c.proxyUID == "0" {
		log.Warn("capture exempts UID 0: every root process's traffic bypasses the proxy; run as a user of its own with CAP_NET_ADMIN, or pass --proxy-uid")
	}
	o, err := c.options()
	if err != nil {
		return nil, err
	}
	// The owner match sees the socket's effective IDs: unless one is exempt, every connection the
	// proxy makes upstream is redirected back to it.
	if uid, gid := os.Geteuid(), os.Getegid(); o.ProxyUID != uid && o.ProxyGID != gid {
		return nil, usageError("--capture-setup: this proxy runs as UID %d GID %d, which --proxy-uid %d and --proxy-gid %d do not exempt, so its own connections would loop back to it", uid, gid, o.ProxyUID, o.ProxyGID)
	}
	setupCtx, cancel := context.WithTimeout(ctx, iptablesTimeout)
	defer cancel()
	t, err := c.tables(setupCtx)
	if err != nil {
		return nil, err
	}
	if err := t.Setup(setupCtx, o); err != nil {
		return nil, &exitError{code: 1, err: fmt.Errorf("capture setup: %w", err)}
	}
	log.Info("capture rules installed", "iptables", t.Backend.Name, "capture_port", o.CapturePort, "dns_port", o.DNSPort, "proxy_uid", o.ProxyUID)
	return func() {
		// The run's context has ended by now; teardown gets its own.
		ctx, cancel := context.WithTimeout(context.Background(), iptablesTimeout)
		defer cancel()
		if err := t.Teardown(ctx); err != nil {
			log.Error("capture rules left behind; `meshentry capture teardown` removes them", "err", err)
			return
		}
		log.Info("capture rules removed")
	}, nil
}

// port is the DNS proxy's bound port, which `run --capture-setup` redirects DNS to; 0 without one.
func (d *dnsProxy) port() uint16 {
	if d == nil || d.ln == nil {
		return 0
	}
	return uint16(d.ln.Addr().(*net.TCPAddr).Port)
}
