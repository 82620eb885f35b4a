package admin

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestListenersNameEveryServedSocket(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	adminAddr := strings.TrimPrefix(s.admin, "http://")
	normalize := strings.NewReplacer(s.forward, "FORWARD", adminAddr, "ADMIN").Replace
	t.Run("lists name::address lines as Envoy's text form does", func(t *testing.T) {
		code, body := s.fetch(t, "GET", "/listeners")
		if code != 200 {
			t.Fatalf("/listeners = %d", code)
		}
		golden(t, "listeners.txt", normalize(body))
	})
	t.Run("gives socket addresses in Envoy's JSON shape", func(t *testing.T) {
		var ls ListenersJSON
		s.getJSON(t, "/listeners?format=json", &ls)
		_, port, _ := net.SplitHostPort(s.forward)
		if len(ls.ListenerStatuses) != 2 || ls.ListenerStatuses[0].Name != "forward_proxy" ||
			fmt.Sprint(ls.ListenerStatuses[0].LocalAddress.SocketAddress.PortValue) != port {
			t.Errorf("listeners = %+v, want forward_proxy on port %s first", ls, port)
		}
	})
}

func TestConfigDumpListsDocumentsAndLastReload(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	var dump ConfigDumpJSON
	s.getJSON(t, "/config_dump", &dump)
	if dump.Version != 7 || len(dump.Documents) != 7 {
		t.Fatalf("config_dump version %d with %d documents, want version 7 and 7 documents", dump.Version, len(dump.Documents))
	}
	first := dump.Documents[0]
	if first.Kind != "ServiceEntry" || first.Namespace != "default" || first.Name != "api" || first.Source != "stack.yaml:1" {
		t.Errorf("first document = %+v, want ServiceEntry default/api at stack.yaml:1", first)
	}
	var spec struct{ Hosts []string }
	if err := json.Unmarshal(first.Spec, &spec); err != nil || len(spec.Hosts) != 1 || spec.Hosts[0] != "api.example.com" {
		t.Errorf("first document's spec = %s (%v), want hosts [api.example.com]", first.Spec, err)
	}
	r := dump.LastReload
	if r.OK || r.Accepted != 1 || r.Refused != 1 || len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0], "stack.yaml:3: ") ||
		r.LoadedAt != "2026-12-01T10:00:00Z" || r.LastAttemptAt != "2026-12-01T10:01:00Z" {
		t.Errorf("last_reload = %+v, want the refused attempt with its file:line", r)
	}
}

func TestRegistryDescribesEveryService(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	var reg RegistryJSON
	s.getJSON(t, "/registry", &reg)
	byHost := map[string]ServiceJSON{}
	for _, svc := range reg.Services {
		if _, dup := byHost[svc.Host]; !dup {
			byHost[svc.Host] = svc
		}
	}
	tests := []struct {
		name, host string
		check      func(ServiceJSON) bool
	}{
		{name: "names a static service's endpoint and cluster", host: "api.example.com", check: func(v ServiceJSON) bool {
			p := v.Ports[0]
			return v.Resolution == "STATIC" && v.Location == "MESH_EXTERNAL" && p.Cluster == "outbound|80||api.example.com" &&
				len(p.Endpoints) == 1 && p.Endpoints[0].Address == "127.0.0.1" && v.Source == "stack.yaml:1" && v.Visible
		}},
		{name: "keeps endpoint locality and weight", host: "idle.example.com", check: func(v ServiceJSON) bool {
			e := v.Ports[0].Endpoints
			return len(e) == 2 && e[0].Weight == 3 && e[0].Locality == "us-east/zone-a/rack-1"
		}},
		{name: "says a service exported elsewhere is not visible here", host: "hidden.example.com", check: func(v ServiceJSON) bool {
			return !v.Visible && len(v.ExportTo) == 1 && v.ExportTo[0] == "shop" && v.Namespace == "shop"
		}},
		{name: "shows resolution NONE with no endpoints", host: "pass.example.com", check: func(v ServiceJSON) bool {
			return v.Resolution == "NONE" && len(v.Ports[0].Endpoints) == 0 && len(v.ExportTo) == 1 && v.ExportTo[0] == "*"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := byHost[tc.host]
			if !ok || len(v.Ports) == 0 || !tc.check(v) {
				t.Errorf("%s = %+v", tc.host, v)
			}
		})
	}
}

func TestRoutesFollowMatching(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	var rs RoutesJSON
	s.getJSON(t, "/routes", &rs)
	var got []string
	for _, r := range rs.Routes {
		got = append(got, fmt.Sprintf("%d %s -> %s (%s)", r.Port, r.Host, r.Cluster, r.ServiceEntry))
	}
	want := []string{
		"80 api.example.com -> outbound|80||api.example.com (default/api)",
		"80 dead.example.com -> outbound|80||dead.example.com (default/dead)",
		"8443 idle.example.com -> outbound|8443||idle.example.com (default/idle)",
		"5432 db.example.com -> outbound|5432||db.example.com (default/db)",
		"443 pass.example.com -> outbound|443||pass.example.com (default/anywhere)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes:\n%s\nwant (the older api entry wins, the hidden one is not routed):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoggingChangesTheLevelLive(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	// A CONNECT tunnel logs a debug line ("tunnel") once the client has its 200, before the
	// bytes flow; when the tunnel's cx_active is back to 0, the line is written if it ever will be.
	tunnelLogged := func() bool {
		before := strings.Count(s.logs.String(), "msg=tunnel")
		s.connect(t, "api.example.com:80").Close()
		poll(t, "the tunnel to close", func() (bool, string) {
			for _, c := range s.proxy.Clusters() {
				if c.Name == "outbound|80||api.example.com" {
					return c.Endpoints[0].Counts.CxActive == 0, "open"
				}
			}
			return false, "no cluster"
		})
		return strings.Count(s.logs.String(), "msg=tunnel") > before
	}
	steps := []struct {
		name, method, path string
		wantCode           int
		wantLevel          string
		wantTunnelLogged   bool
	}{
		{name: "shows the level it starts with", method: "GET", path: "/logging", wantCode: 200, wantLevel: "info"},
		{name: "turns debug on with a POST, as Envoy's admin takes it", method: "POST", path: "/logging?level=debug", wantCode: 200, wantLevel: "debug", wantTunnelLogged: true},
		{name: "takes Envoy's level names", method: "POST", path: "/logging?level=warning", wantCode: 200, wantLevel: "warning"},
		{name: "refuses a level it does not know and keeps the old one", method: "POST", path: "/logging?level=loud", wantCode: 400, wantLevel: "warning"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, body := s.fetch(t, st.method, st.path)
			if code != st.wantCode {
				t.Fatalf("%s %s = %d %q, want %d", st.method, st.path, code, body, st.wantCode)
			}
			if _, now := s.fetch(t, "GET", "/logging"); !strings.Contains(now, "meshentry: "+st.wantLevel+"\n") {
				t.Errorf("level after %s %s: %q, want %s", st.method, st.path, now, st.wantLevel)
			}
			if got := tunnelLogged(); got != st.wantTunnelLogged {
				t.Errorf("debug line logged = %v, want %v", got, st.wantTunnelLogged)
			}
		})
	}
	if !strings.Contains(s.logs.String(), `msg="log level changed" from=info to=debug`) {
		t.Errorf("the change to debug was not logged:\n%s", s.logs.String())
	}
}

func TestOptionalEndpoints(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "istio_requests_total 3") })
	tests := []struct {
		name     string
		edit     func(*Config)
		path     string
		wantCode int
		wantBody string
	}{
		{name: "serves no profiles by default", path: "/debug/pprof/goroutine?debug=1", wantCode: 404},
		{name: "serves profiles with Pprof on", edit: func(c *Config) { c.Pprof = true }, path: "/debug/pprof/goroutine?debug=1", wantCode: 200, wantBody: "goroutine profile"},
		{name: "answers 404 for metrics without a handler", path: "/stats/prometheus", wantCode: 404},
		{name: "serves the metrics handler it is given", edit: func(c *Config) { c.Metrics = metrics }, path: "/stats/prometheus", wantCode: 200, wantBody: "istio_requests_total 3\n"},
		{name: "answers 404 for logging without a level to change", edit: func(c *Config) { c.Level = nil }, path: "/logging?level=debug", wantCode: 404},
		{name: "answers 404 for a path it does not serve", path: "/nope", wantCode: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, tc.edit)
			code, body := s.fetch(t, "GET", tc.path)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Errorf("GET %s = %d %q, want %d with %q", tc.path, code, body[:min(len(body), 120)], tc.wantCode, tc.wantBody)
			}
		})
	}
}
