package gateway

import "testing"

func TestServerHosts(t *testing.T) {
	t.Parallel()
	srv := &Server{Hosts: []Host{ParseHost("egress/httpbin.com", "istio-system"), ParseHost("./*.example.com", "istio-system"),
		ParseHost("*/api.Shop.com.", "istio-system")}}
	tests := []struct {
		name, host, vsNamespace string
		accepts, admits         bool
	}{
		{name: "an exact host is accepted and admits its namespace's VirtualService", host: "httpbin.com", vsNamespace: "egress", accepts: true, admits: true},
		{name: "an exact host refuses another namespace's VirtualService", host: "httpbin.com", vsNamespace: "shop", accepts: true},
		{name: "./ stands for the Gateway's namespace", host: "www.example.com", vsNamespace: "istio-system", accepts: true, admits: true},
		{name: "a wildcard does not cover its bare suffix", host: "example.com", vsNamespace: "istio-system"},
		{name: "a host is normalized before it is compared", host: "API.shop.com.", vsNamespace: "any", accepts: true, admits: true},
		{name: "a host no entry covers is refused", host: "evil.com", vsNamespace: "egress"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, accepts := srv.Accepts(tc.host)
			if accepts != tc.accepts || srv.AdmitsRoute(tc.host, tc.vsNamespace) != tc.admits {
				t.Errorf("Accepts = %v, AdmitsRoute = %v; want %v, %v", accepts, srv.AdmitsRoute(tc.host, tc.vsNamespace), tc.accepts, tc.admits)
			}
		})
	}
}

func TestListenerBySNI(t *testing.T) {
	t.Parallel()
	exact := &Server{Index: 0, Hosts: []Host{ParseHost("a.example.com", "ns")}}
	wild := &Server{Index: 1, Hosts: []Host{ParseHost("*.example.com", "ns")}}
	any := &Server{Index: 2, Hosts: []Host{ParseHost("*", "ns")}}
	l := &Listener{Servers: []*Server{any, wild, exact}}
	tests := []struct {
		name, sni string
		want      *Server
	}{
		{name: "an exact host beats a wildcard", sni: "a.example.com", want: exact},
		{name: "a wildcard beats *", sni: "b.example.com", want: wild},
		{name: "* takes the rest", sni: "other.org", want: any},
		{name: "no SNI goes to the * server", sni: "", want: any},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := l.BySNI(tc.sni); got != tc.want {
				t.Errorf("BySNI(%q) = server %v, want %d", tc.sni, got, tc.want.Index)
			}
		})
	}
	if got := (&Listener{Servers: []*Server{exact}}).BySNI(""); got != nil {
		t.Errorf("no SNI without a * server picked server %d", got.Index)
	}
}

func TestListenerBySNIForAutoPassthrough(t *testing.T) {
	t.Parallel()
	auto := &Server{Kind: KindAutoPassthrough, Hosts: []Host{ParseHost("httpbin.com", "ns")}}
	l := &Listener{Servers: []*Server{auto}}
	if got := l.BySNI("outbound_.443_._.httpbin.com"); got != auto {
		t.Error("the cluster SNI of a covered host was not taken")
	}
	if got := l.BySNI("outbound_.443_._.evil.com"); got != nil {
		t.Error("the cluster SNI of a host the server does not cover was taken")
	}
}

// FuzzServerHosts checks that any hosts entry and name are parsed and compared without
// panicking, and that "*" covers every name.
func FuzzServerHosts(f *testing.F) {
	for _, s := range [][2]string{{"egress/httpbin.com", "httpbin.com"}, {"./*.example.com", "a.example.com"}, {"*", ""}, {"/", "/"}, {"*/*.", "."}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, entry, name string) {
		h := ParseHost(entry, "gw-ns")
		srv := &Server{Hosts: []Host{h, ParseHost("*", "gw-ns")}}
		if _, ok := srv.Accepts(name); !ok {
			t.Fatalf("a server with host * refused %q", name)
		}
		_ = srv.AdmitsRoute(name, "ns")
		_ = (&Listener{Servers: []*Server{srv}}).BySNI(name)
	})
}
