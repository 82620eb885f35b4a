package admin

import (
	"net"
	"strings"
	"testing"
)

// hostOf returns the host status of address in cluster, failing the test when there is none.
func hostOf(t *testing.T, cs ClustersJSON, cluster, address string) HostStatusJSON {
	t.Helper()
	for _, c := range cs.ClusterStatuses {
		if c.Name != cluster {
			continue
		}
		for _, h := range c.HostStatuses {
			if h.Address.SocketAddress != nil && h.Address.SocketAddress.Address == address {
				return h
			}
		}
	}
	t.Fatalf("no host %s in cluster %s: %+v", address, cluster, cs)
	return HostStatusJSON{}
}

// stat returns the named per-host stat.
func stat(h HostStatusJSON, name string) uint64 {
	for _, s := range h.Stats {
		if s.Name == name {
			return s.Number()
		}
	}
	return 1 << 63 // absent: no count a test expects
}

func TestClustersShowEndpointHealthAndCounts(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	for range 3 {
		if code := s.get(t, "http://api.example.com/ok"); code != 200 {
			t.Fatalf("api.example.com answered %d", code)
		}
	}
	for range 2 {
		if code := s.get(t, "http://dead.example.com/"); code != 503 {
			t.Fatalf("dead.example.com answered %d, want 503", code)
		}
	}
	s.settle(t)
	tunnel := s.connect(t, "api.example.com:80")
	defer tunnel.Close()
	_, backendPort, _ := net.SplitHostPort(s.backend)

	t.Run("writes Envoy's text lines for every endpoint", func(t *testing.T) {
		code, body := s.fetch(t, "GET", "/clusters")
		if code != 200 {
			t.Fatalf("/clusters = %d", code)
		}
		golden(t, "clusters.txt", strings.ReplaceAll(body, ":"+backendPort+"::", ":BACKEND::"))
	})
	t.Run("gives the same counts in Envoy's JSON shape", func(t *testing.T) {
		var cs ClustersJSON
		s.getJSON(t, "/clusters?format=json", &cs)
		api := hostOf(t, cs, "outbound|80||api.example.com", "127.0.0.1")
		tests := []struct {
			name string
			host HostStatusJSON
			stat string
			want uint64
		}{
			{name: "api rq_total", host: api, stat: "rq_total", want: 3},
			{name: "api rq_success", host: api, stat: "rq_success", want: 3},
			{name: "api rq_active", host: api, stat: "rq_active", want: 0},
			{name: "api cx_active (the tunnel)", host: api, stat: "cx_active", want: 1},
			{name: "api cx_total", host: api, stat: "cx_total", want: 1},
			{name: "dead cx_connect_fail", host: hostOf(t, cs, "outbound|80||dead.example.com", "127.0.0.1"), stat: "cx_connect_fail", want: 2},
			{name: "dead rq_error", host: hostOf(t, cs, "outbound|80||dead.example.com", "127.0.0.1"), stat: "rq_error", want: 2},
			{name: "dead ejections_total", host: hostOf(t, cs, "outbound|80||dead.example.com", "127.0.0.1"), stat: "ejections_total", want: 1},
			{name: "api ejections_total", host: api, stat: "ejections_total", want: 0},
		}
		for _, tc := range tests {
			if got := stat(tc.host, tc.stat); got != tc.want {
				t.Errorf("%s = %d, want %d", tc.name, got, tc.want)
			}
		}
		if dead := hostOf(t, cs, "outbound|80||dead.example.com", "127.0.0.1"); !dead.HealthStatus.FailedOutlierCheck {
			t.Errorf("dead endpoint after two connect failures: health %+v, want failed_outlier_check", dead.HealthStatus)
		}
		if api.HealthStatus.FailedOutlierCheck || api.HealthStatus.EDSHealthStatus != "HEALTHY" {
			t.Errorf("api endpoint health = %+v, want healthy", api.HealthStatus)
		}
		far := hostOf(t, cs, "outbound|8443||idle.example.com", "10.0.0.2")
		if far.Weight != 1 || far.Locality == nil || far.Locality.Region != "eu-west" || far.Priority != 3 {
			t.Errorf("far endpoint = weight %d locality %+v priority %d, want 1 eu-west 3", far.Weight, far.Locality, far.Priority)
		}
		db := hostOf(t, cs, "outbound|5432||db.example.com", "db.internal.example")
		if db.Hostname != "db.internal.example" || db.Address.SocketAddress.PortValue != 5432 {
			t.Errorf("DNS endpoint = %+v, want hostname db.internal.example port 5432", db)
		}
	})
	t.Run("drops the tunnel from cx_active once it closes", func(t *testing.T) {
		tunnel.Close()
		poll(t, "cx_active of api.example.com", func() (bool, string) {
			var cs ClustersJSON
			s.getJSON(t, "/clusters?format=json", &cs)
			h := hostOf(t, cs, "outbound|80||api.example.com", "127.0.0.1")
			return stat(h, "cx_active") == 0, "cx_active > 0"
		})
	})
}

func TestClustersCountRequestsInFlight(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	done := make(chan int, 1)
	go func() { done <- s.get(t, "http://api.example.com/hold") }()
	active := func() uint64 {
		var cs ClustersJSON
		s.getJSON(t, "/clusters?format=json", &cs)
		return stat(hostOf(t, cs, "outbound|80||api.example.com", "127.0.0.1"), "rq_active")
	}
	poll(t, "rq_active while the backend holds a request", func() (bool, string) {
		n := active()
		return n == 1, "not 1"
	})
	s.releaseHeld()
	if code := <-done; code != 200 {
		t.Fatalf("held request answered %d", code)
	}
	poll(t, "rq_active once the request finished", func() (bool, string) { return active() == 0, "not 0" })
}
