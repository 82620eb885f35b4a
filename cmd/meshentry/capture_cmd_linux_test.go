package main

import (
	"bufio"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/capture"
	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// oneService is a valid config with one ServiceEntry, for tests about the rules rather than routing.
const oneService = `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.test]
  addresses: [10.213.5.5]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`

// savedRules is both families' iptables-save output inside ns, canonical, for before-and-after checks.
func savedRules(ns *netns.Namespace) string { return savedRulesOf(ns, capture.BackendNFT) }

// savedRulesOf is savedRules for the nft or legacy backend.
func savedRulesOf(ns *netns.Namespace, backend string) string {
	return "IPv4:\n" + capture.Canonical(ns.Exec("iptables-"+backend+"-save")) +
		"\nIPv6:\n" + capture.Canonical(ns.Exec("ip6tables-"+backend+"-save"))
}

// TestCaptureCommandSetsUpShowsAndTearsDown runs the three subcommands in a namespace of its own,
// with each iptables backend.
func TestCaptureCommandSetsUpShowsAndTearsDown(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{capture.BackendNFT, capture.BackendLegacy} {
		t.Run("with iptables-"+backend, func(t *testing.T) {
			t.Parallel()
			if _, err := exec.LookPath("iptables-" + backend + "-restore"); err != nil {
				t.Skipf("needs iptables-%s-restore (apt-get install iptables)", backend)
			}
			ns := netns.New(t)
			bin := binary(t)
			meshentry := func(args ...string) string {
				return ns.Exec(append([]string{bin, "capture"}, append(args, "--iptables", backend)...)...)
			}
			before := savedRulesOf(ns, backend)
			for range 2 { // the second setup replaces the first
				meshentry("setup", "--capture-port", "15006", "--proxy-uid", proxyUID)
			}
			rules := savedRulesOf(ns, backend)
			for _, want := range []string{"-A MESHENTRY_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
				"-A MESHENTRY_OUTPUT -m owner --uid-owner 1337 -j RETURN", "-A MESHENTRY_DNS_REDIRECT -p udp -j REDIRECT --to-ports 15053"} {
				if n := strings.Count(rules, want); n != 2 {
					t.Errorf("iptables-save and ip6tables-save show %q %d times together, want once each:\n%s", want, n, rules)
				}
			}
			shown := meshentry("show")
			for _, want := range []string{"# IPv4 (iptables-" + backend + ")", "# IPv6 (ip6tables-" + backend + ")",
				":MESHENTRY_OUTPUT", "-A OUTPUT -p tcp -j MESHENTRY_OUTPUT"} {
				if !strings.Contains(shown, want) {
					t.Errorf("capture show lacks %q:\n%s", want, shown)
				}
			}
			for range 2 {
				meshentry("teardown")
			}
			if after := savedRulesOf(ns, backend); after != before {
				t.Errorf("rules after teardown:\n%s\nbefore setup:\n%s", after, before)
			}
			if shown := meshentry("show"); strings.Count(shown, "# no rules of ours") != 2 {
				t.Errorf("capture show after teardown:\n%s", shown)
			}
		})
	}
}

// TestRunCaptureSetupUndoesItAtExit starts `run --capture-setup`, finds its rules on the capture
// listener's port while it serves, and none once SIGTERM has stopped it.
func TestRunCaptureSetupUndoesItAtExit(t *testing.T) {
	t.Parallel()
	ns := netns.New(t)
	bin := binary(t)
	before := savedRules(ns)
	cmd := exec.Command("ip", "netns", "exec", ns.Name, bin, "run", "-f", writeConfig(t, oneService), "--listen", "", "--admin", "",
		"--capture-listen", "0.0.0.0:15007", "--capture-setup", "--drain-timeout", "1s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "capture listening on") {
				close(listening)
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case <-listening:
	case err := <-exited:
		t.Fatalf("run exited before listening: %v\n%s", err, stderr.String())
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("run did not start listening within 10 s:\n%s", stderr.String())
	}
	rules := savedRules(ns)
	for _, want := range []string{"--to-ports 15007", "--uid-owner 0 -j RETURN"} {
		if !strings.Contains(rules, want) {
			t.Errorf("while run serves, the rules lack %q:\n%s", want, rules)
		}
	}
	if strings.Contains(rules, capture.ChainDNSRedirect) {
		t.Errorf("without a DNS proxy, run redirected DNS:\n%s", rules)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("run after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("run did not exit within 10 s of SIGTERM:\n%s", stderr.String())
	}
	if after := savedRules(ns); after != before {
		t.Errorf("rules after run exited:\n%s\nbefore it started:\n%s\nlog:\n%s", after, before, stderr.String())
	}
}
