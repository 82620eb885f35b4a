package capture

import (
	"net/netip"
	"slices"
	"testing"
)

func TestParsePorts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []PortRange
		wantErr bool
	}{
		{name: "reads nothing from an empty list", in: "", want: nil},
		{name: "reads single ports and both range spellings", in: "80, 8000-8100,9000:9001",
			want: []PortRange{{First: 80, Last: 80}, {First: 8000, Last: 8100}, {First: 9000, Last: 9001}}},
		{name: "refuses port zero", in: "0", wantErr: true},
		{name: "refuses a port over 65535", in: "65536", wantErr: true},
		{name: "refuses a range that ends before it starts", in: "90-80", wantErr: true},
		{name: "refuses a name", in: "http", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePorts(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParsePorts(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParsePorts(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseCIDRs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []netip.Prefix
		wantAll bool
		wantErr bool
	}{
		{name: "reads a star as every destination", in: "*", wantAll: true},
		{name: "reads nothing from an empty list", in: ""},
		{name: "reads prefixes of both families and masks host bits", in: "10.1.2.3/8,fd00::1/64",
			want: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/64")}},
		{name: "reads a bare address as a host prefix", in: "192.0.2.1,2001:db8::1",
			want: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::1/128")}},
		{name: "refuses a prefix longer than the address", in: "10.0.0.0/33", wantErr: true},
		{name: "refuses a host name", in: "example.com", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, all, err := ParseCIDRs(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseCIDRs(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) || all != tt.wantAll {
				t.Errorf("ParseCIDRs(%q) = %v, all %v; want %v, all %v", tt.in, got, all, tt.want, tt.wantAll)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr bool
	}{
		{name: "accepts Istio's defaults", edit: func(*Options) {}},
		{name: "accepts DNS capture turned off", edit: func(o *Options) { o.DNSPort = 0 }},
		{name: "refuses no capture port", edit: func(o *Options) { o.CapturePort = 0 }, wantErr: true},
		{name: "refuses the DNS port on the capture port", edit: func(o *Options) { o.DNSPort = o.CapturePort }, wantErr: true},
		{name: "refuses rules that would capture the proxy itself", edit: func(o *Options) { o.ProxyUID, o.ProxyGID = -1, -1 }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := Defaults()
			tt.edit(&o)
			if err := o.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// FuzzParse checks that no list makes the parsers panic, and that what they accept prints as
// iptables would read it back.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"80,8000-8100", "*,10.0.0.0/8", "fd00::/8", "1:2:3", "-", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ports, err := ParsePorts(s); err == nil {
			for _, p := range ports {
				if p.First == 0 || p.Last < p.First {
					t.Errorf("ParsePorts(%q) accepted %v", s, p)
				}
			}
		}
		if prefixes, _, err := ParseCIDRs(s); err == nil {
			for _, p := range prefixes {
				if !p.IsValid() || p != p.Masked() {
					t.Errorf("ParseCIDRs(%q) accepted %v", s, p)
				}
			}
		}
	})
}
