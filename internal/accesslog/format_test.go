package accesslog

import (
	"encoding/json"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

var (
	start   = time.Date(2026, 12, 1, 14, 3, 7, 123456789, time.FixedZone("CET", 3600))
	client  = net.TCPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.9:41000"))
	local   = net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:15001"))
	service = &telemetry.Service{Host: "api.example.com", Name: "api.example.com", Namespace: "shop", Cluster: "outbound|443||api.example.com"}
)

func TestTextLinesReadAsIstioWritesThem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  *telemetry.Request
		conn *telemetry.Conn
		want string
	}{
		{name: "a forwarded request fills every field it has and dashes the rest",
			req: &telemetry.Request{Start: start, Duration: 12345 * time.Microsecond, UpstreamTime: 9 * time.Millisecond,
				Protocol: "HTTP/1.1", Method: []byte("POST"), Path: []byte("/v1/orders?x=1"), Authority: []byte("api.example.com"),
				ForwardedFor: []byte("192.0.2.1"), UserAgent: []byte("curl/8.5.0"), RequestID: []byte("6b1c8f3e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"),
				Status: 201, RequestBytes: 42, ResponseBytes: 1234, UpstreamHost: "10.1.2.3:443", Service: service,
				DownstreamRemote: client, DownstreamLocal: local},
			want: `[2026-12-01T13:03:07.123Z] "POST /v1/orders?x=1 HTTP/1.1" 201 - via_upstream - "-" 42 1234 12 9 "192.0.2.1" "curl/8.5.0" "6b1c8f3e-1d2a-4c3b-9e8f-0a1b2c3d4e5f" "api.example.com" "10.1.2.3:443" outbound|443||api.example.com - 127.0.0.1:15001 10.0.0.9:41000 - -` + "\n"},
		{name: "a refused request has its flag, no upstream time and the blackhole cluster",
			req: &telemetry.Request{Start: start, Duration: time.Millisecond, UpstreamTime: -1, Protocol: "HTTP/2",
				Method: []byte("GET"), Path: []byte("/"), Authority: []byte("evil.test"), RequestID: []byte("id-1"),
				Status: 502, Flags: telemetry.NoRoute, Service: &telemetry.Service{Cluster: "BlackHoleCluster"}},
			want: `[2026-12-01T13:03:07.123Z] "GET / HTTP/2" 502 NR - - "-" 0 0 1 - "-" "-" "id-1" "evil.test" "-" BlackHoleCluster - - - - -` + "\n"},
		{name: "quotes and control bytes in a value cannot end its field",
			req: &telemetry.Request{Start: start, UpstreamTime: -1, Protocol: "HTTP/1.1", Method: []byte("GET"),
				Path: []byte("/a"), UserAgent: []byte("x\" \x01y"), Status: 503, Flags: telemetry.UpstreamConnectFailure | telemetry.RetriesExhausted},
			want: `[2026-12-01T13:03:07.123Z] "GET /a HTTP/1.1" 503 UF,URX - - "-" 0 0 0 - "-" "x_ _y" "-" "-" "-" - - - - - -` + "\n"},
		{name: "a piped TLS connection has dashes for method, path and protocol, and its SNI",
			conn: &telemetry.Conn{Start: start, Duration: 2 * time.Second, Authority: "api.example.com:443", SNI: "api.example.com",
				Received: 517, Sent: 4096, UpstreamHost: "10.1.2.3:443", Service: service, DownstreamRemote: client, DownstreamLocal: local},
			want: `[2026-12-01T13:03:07.123Z] "- - -" 0 - - - "-" 517 4096 2000 - "-" "-" "-" "-" "10.1.2.3:443" outbound|443||api.example.com - 127.0.0.1:15001 10.0.0.9:41000 api.example.com -` + "\n"},
		{name: "an IPv4 client of a dual-stack listener is written as IPv4",
			conn: &telemetry.Conn{Start: start, DownstreamLocal: local,
				DownstreamRemote: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("[::ffff:10.0.0.9]:41000"))},
			want: `[2026-12-01T13:03:07.123Z] "- - -" 0 - - - "-" 0 0 0 - "-" "-" "-" "-" "-" - - 127.0.0.1:15001 10.0.0.9:41000 - -` + "\n"},
		{name: "a connection that timed out idle has DT",
			conn: &telemetry.Conn{Start: start, Duration: time.Hour, Received: 1, Sent: 2, Flags: telemetry.DurationTimeout},
			want: `[2026-12-01T13:03:07.123Z] "- - -" 0 DT - - "-" 1 2 3600000 - "-" "-" "-" "-" "-" - - - - - -` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var l line
			if tt.req != nil {
				l.fromRequest(tt.req)
			} else {
				l.fromConn(tt.conn)
			}
			if got := string(appendText(nil, &l)); got != tt.want {
				t.Errorf("line\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestJSONLinesCarryIstiosKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rec  line
		want map[string]any
	}{
		{name: "a request has numbers where Envoy's typed JSON has them and strings elsewhere",
			rec: func() (l line) {
				l.fromRequest(&telemetry.Request{Start: start, Duration: 7 * time.Millisecond, UpstreamTime: 5 * time.Millisecond,
					Protocol: "HTTP/1.1", Method: []byte("GET"), Path: []byte("/q?\"x\"\\"), Authority: []byte("api.example.com"),
					UserAgent: []byte("bad\xffutf8\n"), RequestID: []byte("r-1"), Status: 200, ResponseBytes: 10,
					Flags: telemetry.DownstreamClosed, UpstreamHost: "10.1.2.3:443", Service: service, DownstreamRemote: client})
				return l
			}(),
			want: map[string]any{"start_time": "2026-12-01T13:03:07.123Z", "method": "GET", "path": "/q?\"x\"\\", "protocol": "HTTP/1.1",
				"response_code": 200.0, "response_flags": "DC", "response_code_details": "via_upstream", "bytes_received": 0.0, "bytes_sent": 10.0,
				"duration": 7.0, "upstream_service_time": "5", "x_forwarded_for": nil, "user_agent": "bad\ufffdutf8\n", "request_id": "r-1",
				"authority": "api.example.com", "upstream_host": "10.1.2.3:443", "upstream_cluster": "outbound|443||api.example.com",
				"downstream_local_address": nil, "downstream_remote_address": "10.0.0.9:41000", "requested_server_name": nil}},
		{name: "a connection has nulls for the HTTP fields and its SNI",
			rec: func() (l line) {
				l.fromConn(&telemetry.Conn{Start: start, Received: 3, Sent: 4, SNI: "api.example.com", Flags: telemetry.UpstreamConnectFailure})
				return l
			}(),
			want: map[string]any{"start_time": "2026-12-01T13:03:07.123Z", "method": nil, "path": nil, "protocol": nil,
				"response_code": 0.0, "response_flags": "UF", "response_code_details": nil, "bytes_received": 3.0, "bytes_sent": 4.0,
				"duration": 0.0, "upstream_service_time": nil, "x_forwarded_for": nil, "user_agent": nil, "request_id": nil,
				"authority": nil, "upstream_host": nil, "upstream_cluster": nil,
				"downstream_local_address": nil, "downstream_remote_address": nil, "requested_server_name": "api.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := appendJSON(nil, &tt.rec)
			if b[len(b)-1] != '\n' {
				t.Fatalf("line %q does not end with a newline", b)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, b)
			}
			if len(got) != len(tt.want) {
				t.Errorf("%d keys, want %d: %s", len(got), len(tt.want), b)
			}
			for k, w := range tt.want {
				if g, ok := got[k]; !ok || g != w {
					t.Errorf("%s = %#v (present %v), want %#v", k, g, ok, w)
				}
			}
		})
	}
}

func TestParseFormatKnowsTextAndJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Format
		wantErr bool
	}{
		{name: "text is the text format", in: "text", want: Text},
		{name: "json is the JSON format", in: "json", want: JSON},
		{name: "anything else is refused", in: "xml", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseFormat(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

// TestAppendTimeIsAppendFormat checks the hand-written %START_TIME% against the layout it
// replaces, at instants across the edges of fields (years, leap days, the last millisecond of
// a day) and in time zones other than UTC.
func TestAppendTimeIsAppendFormat(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	instants := []time.Time{
		time.Date(2026, 12, 1, 13, 3, 7, 123_456_789, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 1_000_000, east),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0),
	}
	for i := range 2000 {
		instants = append(instants, time.Unix(int64(i)*7_919_993+int64(i%3)*86_400*365, int64(i)*999_983).In(east))
	}
	for _, at := range instants {
		want := at.UTC().AppendFormat(nil, "2006-01-02T15:04:05.000Z")
		if got := appendTime([]byte("x"), at); string(got) != "x"+string(want) {
			t.Fatalf("appendTime(%v) = %q, want %q", at, got[1:], want)
		}
	}
}

func BenchmarkAppendTime(b *testing.B) {
	at, buf := time.Now(), make([]byte, 0, 64)
	for b.Loop() {
		buf = appendTime(buf[:0], at)
	}
}
