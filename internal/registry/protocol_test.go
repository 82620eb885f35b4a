package registry

import (
	"net/netip"
	"testing"
)

func TestListenerFamily(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.internal]
  addresses: [10.1.0.1]
  ports: [{number: 3306, name: mysql, protocol: MYSQL}, {number: 8080, name: raw, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: smtp}
spec:
  hosts: [smtp.example.com]
  ports: [{number: 25, name: smtp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9000, name: auto}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 25, name: http-25, protocol: HTTP}]
  resolution: DNS
  exportTo: [other]
`)
	tests := []struct {
		name string
		ip   string
		port uint32
		want Family
	}{
		{name: "a TCP service's VIP has its own TCP listener", ip: "10.1.0.1", port: 3306, want: FamilyTCP},
		{name: "a VIP's TCP port wins over an HTTP port shared by the other hosts", ip: "10.1.0.1", port: 8080, want: FamilyTCP},
		{name: "a port only TCP services declare is TCP for any address", ip: "10.9.9.9", port: 25, want: FamilyTCP},
		{name: "a port only HTTP services declare goes to HTTP", ip: "10.9.9.9", port: 8080, want: FamilyHTTP},
		{name: "a port without a protocol is sniffed", ip: "10.9.9.9", port: 9000, want: FamilyAuto},
		{name: "a port nothing declares is sniffed", ip: "10.9.9.9", port: 5432, want: FamilyAuto},
		{name: "services hidden from the namespace do not count", ip: "10.9.9.9", port: 443, want: FamilyAuto},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := snap.ListenerFamily(netip.MustParseAddr(tc.ip), tc.port, "default"); got != tc.want {
				t.Fatalf("ListenerFamily(%s, %d) = %v, want %v", tc.ip, tc.port, got, tc.want)
			}
		})
	}
}
