package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// run --capture-setup exempts the UID and GID it is given from capture. When neither is the
// running proxy's own, its upstream connections and DNS queries are redirected back to itself
// and loop; the setup must refuse before it installs anything.
func TestRunCaptureSetupRefusesAnExemptionThatIsNotTheProxysOwn(t *testing.T) {
	t.Parallel()
	other := strconv.Itoa(os.Geteuid() + 4242)
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" when the loop check must pass (the run then fails later, on iptables)
	}{
		{name: "refuses a UID and GID that are not the process's", args: []string{"--proxy-uid", other, "--proxy-gid", other}, wantErr: "loop"},
		{name: "refuses a UID not the process's with no GID exempt", args: []string{"--proxy-uid", other, "--proxy-gid", "-1"}, wantErr: "loop"},
		{name: "accepts another UID when the process's own GID is exempt", args: []string{"--proxy-uid", other, "--proxy-gid", strconv.Itoa(os.Getegid())}},
		{name: "accepts the process's own UID", args: []string{"--proxy-uid", strconv.Itoa(os.Geteuid()), "--proxy-gid", "-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var c captureRunFlags
			fl := pflag.NewFlagSet("run", pflag.ContinueOnError)
			c.register(fl)
			// A backend no machine has, so an accepted check stops at iptables and changes nothing.
			if err := fl.Parse(append([]string{"--capture-setup", "--iptables", "none-such"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			undo, err := c.start(context.Background(), fl, slog.New(slog.NewTextHandler(io.Discard, nil)), ln, 0)
			if err == nil {
				undo()
				t.Fatal("start installed capture rules in the test's own namespace")
			}
			if got := strings.Contains(err.Error(), "loop"); got != (tt.wantErr != "") {
				t.Fatalf("start: %v; want a loop refusal %v", err, tt.wantErr != "")
			}
		})
	}
}
