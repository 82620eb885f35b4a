package capture

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/origdst"
	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// The test topology: the application's namespace (app) and a remote one joined by a veth pair, so
// that traffic which is not captured really reaches a server elsewhere instead of vanishing.
const (
	appAddr4    = "10.213.1.1"
	remoteAddr4 = "10.213.1.2"
	appAddr6    = "fd00:213:1::1"
	remoteAddr6 = "fd00:213:1::2"
	// dnsMarker is the address our DNS server answers every query with, so a reply shows it came from
	// the DNS port; it is only ever data, never dialed.
	dnsMarker = "192.0.2.53"
	proxyUID  = "1337"
)

type topology struct {
	app, remote *netns.Namespace
	tables      Tables
}

// newTopology builds the two namespaces for backend, a remote server answering "remote" on its
// ports, and in app the capture listener (answering "captured ORIGDST"), a DNS server on the DNS
// port, and a local server on loopback answering "local". It skips when backend's binaries are missing.
func newTopology(t *testing.T, backend string) *topology {
	t.Helper()
	for _, bin := range []string{"iptables-" + backend + "-restore", "ip6tables-" + backend + "-save"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (apt-get install iptables)", bin)
		}
	}
	app, remote := netns.New(t), netns.New(t)
	app.IP("link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", remote.Name)
	for _, side := range []struct {
		ns          *netns.Namespace
		dev, a4, a6 string
	}{{ns: app, dev: "v0", a4: appAddr4, a6: appAddr6}, {ns: remote, dev: "v1", a4: remoteAddr4, a6: remoteAddr6}} {
		side.ns.IP("addr", "add", side.a4+"/24", "dev", side.dev)
		side.ns.IP("addr", "add", side.a6+"/64", "dev", side.dev, "nodad")
		side.ns.IP("link", "set", side.dev, "up")
	}
	for _, addr := range []string{remoteAddr4, "[" + remoteAddr6 + "]"} {
		for _, port := range []string{"9000", "9001", "53"} {
			serveLine(t, listenIn(t, remote, addr+":"+port), func(net.Conn) string { return "remote" })
		}
	}
	capture := listenIn(t, app, fmt.Sprintf(":%d", DefaultCapturePort))
	serveLine(t, capture, func(c net.Conn) string {
		dst, err := origdst.OriginalDst(c.(*net.TCPConn))
		if err != nil {
			return "captured without original destination: " + err.Error()
		}
		return "captured " + dst.String()
	})
	serveLine(t, listenIn(t, app, "127.0.0.1:9002"), func(net.Conn) string { return "local" })
	serveDNS(t, app)
	run := func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		return Exec(ctx, stdin, "ip", append([]string{"netns", "exec", app.Name, name}, args...)...)
	}
	b, err := SelectBackend(context.Background(), run, backend)
	if err != nil {
		t.Fatal(err)
	}
	return &topology{app: app, remote: remote, tables: Tables{Backend: b, Run: run}}
}

func listenIn(t *testing.T, ns *netns.Namespace, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serveLine answers every connection on ln with one line, then closes it.
func serveLine(t *testing.T, ln net.Listener, line func(net.Conn) string) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintln(c, line(c))
			c.Close()
		}
	}()
}

// serveDNS answers every query with dnsMarker, on UDP and TCP at the DNS port.
func serveDNS(t *testing.T, ns *netns.Namespace) {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		rr, _ := dns.NewRR(req.Question[0].Name + " 5 IN A " + dnsMarker)
		m.Answer = append(m.Answer, rr)
		w.WriteMsg(m)
	})
	addr := fmt.Sprintf(":%d", DefaultDNSPort)
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	ln := listenIn(t, ns, addr)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
}

// dial connects from app as root to addr and returns the line the other end answered.
func (tp *topology) dial(t *testing.T, addr string) string {
	t.Helper()
	var c net.Conn
	if err := tp.app.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr, 5*time.Second); return err }); err != nil {
		return "dial failed: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "read failed: " + err.Error()
	}
	return strings.TrimSpace(line)
}

// dialAsProxy connects from app as the proxy's UID and GID, in a subprocess, and returns the line
// the other end answered.
func (tp *topology) dialAsProxy(t *testing.T, host, port string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", tp.app.Name, "setpriv", "--reuid", proxyUID, "--regid", proxyUID,
		"--clear-groups", "timeout", "5", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s && head -n 1 <&3", host, port)).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("dial as the proxy failed: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// query asks server for a name over network and returns the answer's first address.
func (tp *topology) query(t *testing.T, network, server string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("db.example.", dns.TypeA)
	var in *dns.Msg
	err := tp.app.Do(func() (err error) {
		in, _, err = (&dns.Client{Net: network, Timeout: 5 * time.Second}).Exchange(m, server)
		return err
	})
	if err != nil {
		return "query failed: " + err.Error()
	}
	if len(in.Answer) == 0 {
		return "no answer"
	}
	return in.Answer[0].(*dns.A).A.String()
}

// saveAll is both families' iptables-save output in app, canonical.
func (tp *topology) saveAll(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range Families {
		_, save := tp.tables.Backend.Commands(fam)
		out, err := tp.tables.Run(context.Background(), nil, save)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:\n%s\n", fam, Canonical(string(out)))
	}
	return b.String()
}
