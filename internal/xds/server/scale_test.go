package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// scaleSnapshot compiles n STATIC ServiceEntries, each with two endpoints; changed renames the
// endpoint address of entry 0, which is what an incremental push carries.
func scaleSnapshot(tb testing.TB, dir string, n int, changed int, version uint64) *registry.Snapshot {
	tb.Helper()
	var b strings.Builder
	for i := range n {
		last := 1
		if i == 0 {
			last = 100 + changed
		}
		fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se-%d, namespace: default}\nspec:\n  hosts: [svc-%d.example.com]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.%d.%d.1}, {address: 10.%d.%d.%d}]\n",
			i, i, i/256%256, i%256, i/256%256, i%256, last%250+2)
	}
	path := fmt.Sprintf("%s/se-%d.yaml", dir, version)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	loaded, err := config.Load([]string{path}, config.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	res := compile.Documents(loaded, version)
	if res.Errors() > 0 {
		tb.Fatal(res.Diagnostics[0])
	}
	return res.Snapshot
}

// scaleSet is n ServiceEntries written over 100 files and compiled through one compile.Cache, as
// the reloads of `meshentry xds` are: a change rewrites entry 0's file only, and the other
// entries keep their services, which is what lets a push translate only what changed.
type scaleSet struct {
	dir   string
	n     int
	cache *compile.Cache
}

func newScaleSet(dir string, n int) *scaleSet {
	return &scaleSet{dir: dir, n: n, cache: compile.NewCache()}
}

const scaleFiles = 100

// snapshot writes the files (all of them the first time, else only entry 0's) with entry 0's
// second endpoint set by changed, and compiles them.
func (s *scaleSet) snapshot(tb testing.TB, changed int, version uint64) *registry.Snapshot {
	tb.Helper()
	for f := range scaleFiles {
		path := fmt.Sprintf("%s/se-%03d.yaml", s.dir, f)
		if _, err := os.Stat(path); err == nil && f != 0 {
			continue
		}
		var b strings.Builder
		for i := f; i < s.n; i += scaleFiles {
			last := 1
			if i == 0 {
				last = 100 + changed
			}
			fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se-%d, namespace: default}\nspec:\n  hosts: [svc-%d.example.com]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.%d.%d.1}, {address: 10.%d.%d.%d}]\n",
				i, i, i/256%256, i%256, i/256%256, i%256, last%250+2)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	res, err := s.cache.Paths([]string{s.dir}, config.Options{}, version)
	if err != nil {
		tb.Fatal(err)
	}
	if res.Errors() > 0 {
		tb.Fatal(res.Diagnostics[0])
	}
	return res.Snapshot
}

// deltaClient is one ADS client on the Delta protocol that watches clusters and endpoints.
type deltaClient struct {
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	got    chan pushed // each response, after it is ACKed
}

// pushed is what a bench client keeps of a response: its type, how many resources it carried
// and the first one's name.
type pushed struct {
	typ   string
	n     int
	first string
}

func newDeltaClient(ctx context.Context, tb testing.TB, cc *grpc.ClientConn, id int) *deltaClient {
	// The names codec decodes only what the client reads (names, type, nonce), so that the
	// clients sharing the process with the server do not hold every resource decoded.
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx, grpc.ForceCodec(namesCodec{}))
	if err != nil {
		tb.Fatal(err)
	}
	node := &core.Node{Id: fmt.Sprintf("sidecar~10.9.0.%d~c%d.default~default.svc.cluster.local", id%250, id)}
	for _, typ := range []string{resource.ClusterType, resource.EndpointType} {
		if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: typ}); err != nil {
			tb.Fatal(err)
		}
	}
	c := &deltaClient{stream: stream, got: make(chan pushed, 16)}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				close(c.got)
				return
			}
			p := pushed{typ: resp.TypeUrl, n: len(resp.Resources)}
			if p.n > 0 {
				p.first = resp.Resources[0].GetName()
			}
			_ = stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce})
			c.got <- p
		}
	}()
	return c
}

// namesCodec is the bench clients' gRPC codec: requests are encoded as usual, a Delta response
// is decoded to its type URL, nonce, removed names and its first resource's name and version
// (the others are counted, as one shared empty resource each).
type namesCodec struct{}

func (namesCodec) Name() string { return "proto" }

var unnamed = &discovery.Resource{}

func (namesCodec) Marshal(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }

func (namesCodec) Unmarshal(data []byte, v any) error {
	resp, ok := v.(*discovery.DeltaDiscoveryResponse)
	if !ok {
		return proto.Unmarshal(data, v.(proto.Message))
	}
	return eachField(data, func(num protowire.Number, val []byte) error {
		switch num {
		case 2:
			if len(resp.Resources) > 0 {
				resp.Resources = append(resp.Resources, unnamed)
				return nil
			}
			r := &discovery.Resource{}
			err := eachField(val, func(num protowire.Number, val []byte) error {
				switch num {
				case 1:
					r.Version = string(val)
				case 3:
					r.Name = string(val)
				}
				return nil
			})
			resp.Resources = append(resp.Resources, r)
			return err
		case 4:
			resp.TypeUrl = string(val)
		case 5:
			resp.Nonce = string(val)
		case 6:
			resp.RemovedResources = append(resp.RemovedResources, string(val))
		}
		return nil
	})
}

// eachField calls fn with each length-delimited field of a message, skipping the others.
func eachField(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		val, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if err := fn(num, val); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[(len(d)*99)/100]
}

// cpuTime is the process's user and system CPU time so far: on a shared machine wall times
// are noise, CPU seconds are what compares across runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMiB reads a field of /proc/self/status: VmRSS now, VmHWM the peak.
func rssMiB(field string) float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, field+":")), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkScale is the scale check: MESHENTRY_XDS_SES ServiceEntries (default 10,000)
// pushed to 100 Delta ADS clients: the first full push (every client holds all clusters and
// endpoints), then b.N incremental pushes after one ServiceEntry changes, with p50/p99 over all
// clients. Server and clients share the process, so the RSS reported is an upper bound.
func BenchmarkScale(b *testing.B) {
	n := 10000
	if v := os.Getenv("MESHENTRY_XDS_SES"); v != "" {
		fmt.Sscanf(v, "%d", &n)
	}
	const clients = 100
	// MESHENTRY_XDS_UNACKED_MIB sets Config.MaxUnackedBytes, to see its effect on RSS and time.
	var unacked int64
	if v := os.Getenv("MESHENTRY_XDS_UNACKED_MIB"); v != "" {
		fmt.Sscanf(v, "%d", &unacked)
	}
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := New(ctx, Config{MaxUnackedBytes: unacked << 20})
	set := newScaleSet(dir, n)
	if err := s.Update(set.snapshot(b, 0, 1)); err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	// First push: every client connects at once; done when it holds clusters and endpoints.
	first := make([]time.Duration, clients)
	cs := make([]*deltaClient, clients)
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), cpuTime()
	for i := range clients {
		wg.Go(func() {
			c := newDeltaClient(ctx, b, cc, i)
			cs[i] = c
			var clustersN, endpointsN int
			for p := range c.got {
				if p.typ == resource.ClusterType {
					clustersN += p.n
				} else {
					endpointsN += p.n
				}
				if clustersN >= n && endpointsN >= n {
					break
				}
			}
			first[i] = time.Since(start)
		})
	}
	wg.Wait()
	firstCPU := cpuTime() - cpu0
	firstP50, firstP99 := percentiles(first)
	var incr, compiled []time.Duration
	var incrCPU time.Duration
	b.ResetTimer()
	for i := range b.N {
		w0 := time.Now()
		snap := set.snapshot(b, i+1, uint64(i+2)) // the file written and compiled, as a reload does
		compiled = append(compiled, time.Since(w0))
		t0, c0 := time.Now(), cpuTime()
		if err := s.Update(snap); err != nil {
			b.Fatal(err)
		}
		times := make([]time.Duration, clients)
		for j, c := range cs {
			wg.Go(func() {
				for p := range c.got {
					if p.n > 0 && strings.HasSuffix(p.first, "svc-0.example.com") {
						times[j] = time.Since(t0)
						return
					}
				}
			})
		}
		wg.Wait()
		incrCPU += cpuTime() - c0
		incr = append(incr, times...)
	}
	// Reported after the loop: ResetTimer drops metrics reported before it.
	b.ReportMetric(float64(firstP50.Milliseconds()), "first-p50-ms")
	b.ReportMetric(float64(firstP99.Milliseconds()), "first-p99-ms")
	p50, p99 := percentiles(incr)
	b.ReportMetric(float64(p50.Microseconds())/1000, "incr-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "incr-p99-ms")
	// What a reload adds before the push: writing entry 0's file and compiling the 10,000
	// entries through the cache, as `meshentry xds` does on a file event.
	c50, c99 := percentiles(compiled)
	b.ReportMetric(float64(c50.Microseconds())/1000, "compile-p50-ms")
	b.ReportMetric(float64(c99.Microseconds())/1000, "compile-p99-ms")
	b.ReportMetric(rssMiB("VmRSS"), "rss-MiB")
	b.ReportMetric(rssMiB("VmHWM"), "rss-peak-MiB")
	// CPU of the whole process (server and clients) for the first push and per incremental one.
	b.ReportMetric(firstCPU.Seconds(), "first-cpu-s")
	b.ReportMetric(float64(incrCPU.Microseconds())/1000/float64(b.N), "incr-cpu-ms")
}

// BenchmarkUpdate10k is the server's own share of an incremental push: translating and hashing
// 10,000 ServiceEntries for one kind of node, with no client connected, the two snapshots
// compiled one from the other as a reload makes them.
func BenchmarkUpdate10k(b *testing.B) {
	set := newScaleSet(b.TempDir(), 10000)
	snaps := []*registry.Snapshot{set.snapshot(b, 0, 1), set.snapshot(b, 1, 2)}
	s := New(context.Background(), Config{})
	if err := s.join(&core.Node{Id: "sidecar~10.9.0.1~c.default~default.svc.cluster.local"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := s.Update(snaps[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
