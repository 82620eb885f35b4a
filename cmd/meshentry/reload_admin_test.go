package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/metrics/metricstest"
	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// TestReloadsShowOnTheAdminAPI checks that an operator sees each reload where the issue says:
// config_dump's last reload (with the refused change's file:line) and the reload metrics.
func TestReloadsShowOnTheAdminAPI(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "api", "127.0.0.1:0")
	r := startReloadRunWith(t, serviceEntry("old", "old.example.com", be.Port()), func(f *runFlags) { f.adminAddr = "127.0.0.1:0" })
	adminAddr := r.bound["admin"]
	lastReload := func() map[string]any {
		t.Helper()
		code, body := adminGet(t, "GET", adminAddr, "/config_dump")
		if code != 200 {
			t.Fatalf("/config_dump: %d %s", code, body)
		}
		var dump map[string]any
		if err := json.Unmarshal([]byte(body), &dump); err != nil {
			t.Fatalf("/config_dump is not JSON: %v", err)
		}
		lr, _ := dump["last_reload"].(map[string]any)
		return lr
	}
	replace(t, r.path, serviceEntry("new", "new.example.com", be.Port()))
	pollUntil(t, "version 2 serves", func() bool { return lastReload()["version"] == float64(2) })
	replace(t, r.path, serviceEntry("new", "new.example.com", be.Port())+"---\n"+misspelled("bad"))
	pollUntil(t, "the refusal shows", func() bool { return lastReload()["ok"] == false })

	lr := lastReload()
	if lr["version"] != float64(2) {
		t.Errorf("version after a refused change = %v, want 2 (the last good one)", lr["version"])
	}
	want := r.path + ":15: ServiceEntry default/bad: spec.resolutoin: unknown field"
	if b, _ := json.Marshal(lr); !strings.Contains(string(b), want) {
		t.Errorf("last_reload %s lacks the finding %q", b, want)
	}
	fams := metricstest.Scrape(t, "http://"+adminAddr.String()+"/stats/prometheus")
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{name: "meshentry_config_reloads_total", labels: map[string]string{"result": "accepted"}, want: 1},
		{name: "meshentry_config_reloads_total", labels: map[string]string{"result": "refused"}, want: 1},
		{name: "meshentry_snapshot_version", want: 2},
	} {
		if got := fams.Sum(tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
