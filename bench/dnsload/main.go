// Command dnsload sends DNS queries for the names of a file (one "name TYPE" a line, as dnsperf
// reads them) to a server over UDP from several workers for a while, each waiting for its answer
// before the next, and prints queries/s and the p50/p99 latency.
//
//	dnsload -s 127.0.0.1:15053 -d names.txt -c 8 -l 10s
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

func main() {
	server := flag.String("s", "127.0.0.1:53", "server address")
	file := flag.String("d", "", "query file: name TYPE per line")
	workers := flag.Int("c", 8, "concurrent workers, one query in flight each")
	length := flag.Duration("l", 10*time.Second, "how long to send")
	label := flag.String("label", "", "row label")
	flag.Parse()
	queries, err := readQueries(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsload:", err)
		os.Exit(2)
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, *workers)
	deadline := time.Now().Add(*length)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *workers {
		wg.Go(func() {
			c, err := dns.Dial("udp", *server)
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			for i := w; time.Now().Before(deadline); i++ {
				q := queries[i%len(queries)].Copy() // workers share the list, not the messages
				t0 := time.Now()
				c.SetDeadline(t0.Add(2 * time.Second))
				q.Id = dns.Id()
				if err := c.WriteMsg(q); err != nil {
					failed.Add(1)
					continue
				}
				r, err := c.ReadMsg()
				if err == nil && (r.Id != q.Id || r.Rcode != dns.RcodeSuccess) {
					err = fmt.Errorf("answer id %d rcode %s for query id %d", r.Id, dns.RcodeToString[r.Rcode], q.Id)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					failed.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "dnsload %s: first failure: %s\n", *label, e)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		fmt.Printf("%-34s no answers (%d failed)\n", *label, failed.Load())
		return
	}
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))] }
	fmt.Printf("%-34s %9.0f q/s   p50 %7.1f µs   p99 %7.1f µs   failed %d\n", *label,
		float64(len(all))/elapsed.Seconds(), float64(pct(0.50).Nanoseconds())/1e3, float64(pct(0.99).Nanoseconds())/1e3, failed.Load())
}

func readQueries(path string) ([]*dns.Msg, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*dns.Msg
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		t, ok := dns.StringToType[strings.ToUpper(fields[1])]
		if !ok {
			return nil, fmt.Errorf("%s: unknown type %q", path, fields[1])
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(fields[0]), t)
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no queries", path)
	}
	return out, sc.Err()
}
