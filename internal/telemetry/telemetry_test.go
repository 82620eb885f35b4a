package telemetry

import "testing"

func TestFlagsReadAsEnvoyWritesThem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		flags Flags
		want  string
	}{
		{name: "no flag is a dash", flags: 0, want: "-"},
		{name: "one flag is its code", flags: NoHealthyUpstream, want: "UH"},
		{name: "several flags are joined by commas in a fixed order", flags: RetriesExhausted | UpstreamConnectFailure, want: "UF,URX"},
		{name: "the last flag has a code too", flags: DurationTimeout | NoRoute, want: "NR,DT"},
		{name: "fault flags read as Envoy writes them", flags: DelayInjected | FaultInjected, want: "FI,DI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.flags.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := string(tt.flags.Append([]byte("x "))); got != "x "+tt.want {
				t.Errorf("Append = %q", got)
			}
		})
	}
}

func TestFlagsAppendWithoutAllocating(t *testing.T) {
	buf := make([]byte, 0, 32)
	if n := testing.AllocsPerRun(100, func() { buf = (UpstreamTimeout | DownstreamClosed).Append(buf[:0]) }); n != 0 {
		t.Errorf("Append allocates %v times", n)
	}
}

type counting struct{ requests, opened, closed int }

func (c *counting) Request(*Request) { c.requests++ }
func (c *counting) ConnOpened(*Conn) { c.opened++ }
func (c *counting) ConnClosed(*Conn) { c.closed++ }

func TestMultiHandsEachRecordToEverySink(t *testing.T) {
	t.Parallel()
	a, b := &counting{}, &counting{}
	m := Multi{a, Discard{}, b}
	m.Request(&Request{})
	m.ConnOpened(&Conn{})
	m.ConnClosed(&Conn{})
	m.ConnClosed(&Conn{})
	for _, c := range []*counting{a, b} {
		if c.requests != 1 || c.opened != 1 || c.closed != 2 {
			t.Errorf("sink saw %+v, want 1 request, 1 open, 2 closes", *c)
		}
	}
}
