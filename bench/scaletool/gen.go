package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// namespaces the generated entries are spread over; each entry names its own.
var namespaces = []string{"default", "payments", "search", "edge", "data", "batch", "infra", "web"}

// genCmd writes n ServiceEntries over files files below dir, two hosts each, in six shapes that
// cycle: DNS with no endpoints, a wildcard with NONE, a VIP with STATIC endpoints, a CIDR with
// NONE, STATIC endpoints with labels and localities, and DNS_ROUND_ROBIN with named endpoints.
func genCmd(args []string) error {
	fl := flag.NewFlagSet("gen", flag.ExitOnError)
	n := fl.Int("n", 10_000, "ServiceEntries")
	files := fl.Int("files", 1000, "files to spread them over")
	dir := fl.String("dir", "", "output folder (emptied first)")
	fl.Parse(args)
	if *dir == "" || *n <= 0 || *files <= 0 {
		return fmt.Errorf("gen: -dir, a positive -n and -files are needed")
	}
	if err := os.RemoveAll(*dir); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	per := (*n + *files - 1) / *files
	for f := 0; f*per < *n; f++ {
		if err := writeFile(entryFile(*dir, f), f*per, min(*n, (f+1)*per)); err != nil {
			return err
		}
	}
	return nil
}

// entryFile names file f; a two-level layout keeps folders small, as a real repository would.
func entryFile(dir string, f int) string {
	return filepath.Join(dir, fmt.Sprintf("g%02d", f%16), fmt.Sprintf("entries-%05d.yaml", f))
}

func writeFile(path string, from, to int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(fh)
	for i := from; i < to; i++ {
		writeEntry(w, i)
	}
	if err := w.Flush(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

func writeEntry(w *bufio.Writer, i int) {
	ns := namespaces[i%len(namespaces)]
	a, b, c := i/65536%256, i/256%256, i%256
	fmt.Fprintf(w, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se-%d\n  namespace: %s\n  labels:\n    app: svc%d\n    team: t%d\nspec:\n", i, ns, i, i%50)
	switch i % 6 {
	case 0:
		fmt.Fprintf(w, "  hosts:\n  - svc%d.a.example.com\n  - svc%d.b.example.com\n", i, i)
		w.WriteString("  ports:\n  - number: 443\n    name: https\n    protocol: TLS\n  resolution: DNS\n  location: MESH_EXTERNAL\n")
	case 1:
		fmt.Fprintf(w, "  hosts:\n  - \"*.wild%d.example.com\"\n  - api%d.example.org\n", i, i)
		w.WriteString("  ports:\n  - number: 443\n    name: tls\n    protocol: TLS\n  resolution: NONE\n")
	case 2:
		fmt.Fprintf(w, "  hosts:\n  - vip%d.internal.example\n  - vip%d-alt.internal.example\n  addresses:\n  - 240.%d.%d.%d\n", i, i, a, b, c)
		w.WriteString("  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n    targetPort: 8080\n  resolution: STATIC\n  location: MESH_INTERNAL\n")
		fmt.Fprintf(w, "  endpoints:\n  - address: 10.%d.%d.%d\n  - address: 10.%d.%d.%d\n    weight: 3\n", 64+a, b, c, 128+a, b, c)
	case 3:
		fmt.Fprintf(w, "  hosts:\n  - net%d.cidr.example\n  - net%d-b.cidr.example\n  addresses:\n  - 172.%d.%d.0/24\n", i, i, 16+i/256%16, c)
		w.WriteString("  ports:\n  - number: 5432\n    name: tcp-pg\n    protocol: TCP\n  resolution: NONE\n")
	case 4:
		fmt.Fprintf(w, "  hosts:\n  - static%d.example.net\n  - static%d.example.org\n", i, i)
		w.WriteString("  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  - number: 9090\n    name: grpc\n    protocol: GRPC\n  resolution: STATIC\n")
		fmt.Fprintf(w, "  endpoints:\n  - address: 11.%d.%d.%d\n    locality: us-east1/us-east1-b\n    labels:\n      version: v1\n  - address: 12.%d.%d.%d\n    ports:\n      http: 8080\n    locality: us-west1/us-west1-a\n    labels:\n      version: v2\n", a, b, c, a, b, c)
	case 5:
		fmt.Fprintf(w, "  hosts:\n  - rr%d.example.com\n  - rr%d.example.io\n", i, i)
		w.WriteString("  ports:\n  - number: 443\n    name: https\n    protocol: HTTPS\n  resolution: DNS_ROUND_ROBIN\n")
		fmt.Fprintf(w, "  endpoints:\n  - address: origin%d.cdn.example.com\n", i)
	}
}
