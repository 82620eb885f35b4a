package main

import (
	"runtime"
	"testing"

	"github.com/spf13/pflag"
)

// TestForwardLoopOn serves the forward port on the loops when the flag says so, and falls back
// to the Go path only where the flag was left at its default and the loops cannot bind
// --listen: given explicitly, it holds (and a host name is then a usage error).
func TestForwardLoopOn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the loops need Linux")
	}
	tests := []struct {
		name, listen string
		args         []string
		want         bool
	}{
		{name: "on by default", listen: "127.0.0.1:15001", want: true},
		{name: "on by default, every address", listen: ":15001", want: true},
		{name: "given, an IP address", listen: "127.0.0.1:15001", args: []string{"--forward-event-loop"}, want: true},
		{name: "given, every address", listen: ":15001", args: []string{"--forward-event-loop"}, want: true},
		{name: "given, a host name", listen: "localhost:15001", args: []string{"--forward-event-loop"}, want: true},
		{name: "given off", listen: "127.0.0.1:15001", args: []string{"--forward-event-loop=false"}, want: false},
		{name: "on by default, a host name", listen: "localhost:15001", want: false},
		{name: "on by default, no forward port", listen: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f forwardLoopFlags
			fl := pflag.NewFlagSet("run", pflag.ContinueOnError)
			f.register(fl)
			if err := fl.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if got := f.on(tt.listen); got != tt.want {
				t.Errorf("on(%q) with %v = %v, want %v", tt.listen, tt.args, got, tt.want)
			}
		})
	}
}
