package resolve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strings"

	"github.com/miekg/dns"
)

const (
	// ednsSize is the UDP payload size DNS flag day 2020 settled on: large enough for most
	// answers, small enough to avoid IP fragmentation.
	ednsSize = 1232

	// A server that leaves a CNAME chain for us to follow gets this many more queries, and a
	// chain inside one reply this many links; real chains are short and loops are not.
	maxChase     = 8
	maxChainHops = 16
)

// typeAnswer is the outcome of one record type for one name.
type typeAnswer struct {
	addrs []netip.Addr
	// ttl is the smallest TTL along the chain, math.MaxUint32 when there are no addresses.
	ttl uint32
	// err is a failure to get an answer; a name without records is not a failure.
	err error
}

// queryType asks for the qtype addresses of name, chasing a CNAME chain the server left open.
func (r *Resolver) queryType(name string, qtype uint16) typeAnswer {
	ttl := uint32(math.MaxUint32)
	for range maxChase {
		reply, err := r.exchange(name, qtype)
		if err != nil {
			return typeAnswer{ttl: math.MaxUint32, err: err}
		}
		addrs, chainTTL, next, err := extract(reply, name, qtype)
		if err != nil {
			return typeAnswer{ttl: math.MaxUint32, err: fmt.Errorf("%s %s: %w", dns.TypeToString[qtype], name, err)}
		}
		ttl = min(ttl, chainTTL)
		if next == "" {
			if len(addrs) == 0 {
				ttl = math.MaxUint32
			}
			return typeAnswer{addrs: addrs, ttl: ttl}
		}
		name = next
	}
	return typeAnswer{ttl: math.MaxUint32, err: fmt.Errorf("%s %s: CNAME chain longer than %d queries", dns.TypeToString[qtype], name, maxChase)}
}

// exchange sends one question to each server in turn until one answers usefully, over UDP and
// again over TCP when the UDP reply was truncated.
func (r *Resolver) exchange(name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(ednsSize, false)
	var errs []error
	for _, server := range r.servers {
		r.stats.queries.Add(1)
		reply, err := r.exchangeOne(&r.udp, m, server)
		if err == nil && reply.Truncated {
			reply, err = r.exchangeOne(&r.tcp, m, server)
		}
		if err == nil {
			err = check(reply, name, qtype)
		}
		if err == nil {
			return reply, nil
		}
		errs = append(errs, fmt.Errorf("%s %s via %s: %w", dns.TypeToString[qtype], name, server, err))
		if r.ctx.Err() != nil {
			break
		}
	}
	r.stats.failures.Add(1)
	return nil, errors.Join(errs...)
}

// exchangeOne runs one exchange bounded by Timeout. The miekg client only turns a context into
// socket deadlines, so the connection is also closed when Close cancels the resolver, letting
// Close return at once.
func (r *Resolver) exchangeOne(c *dns.Client, m *dns.Msg, server string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
	defer cancel()
	co, err := c.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	stop := context.AfterFunc(ctx, func() { co.Close() })
	defer stop()
	reply, _, err := c.ExchangeWithConnContext(ctx, m, co)
	if err != nil {
		if errors.Is(r.ctx.Err(), context.Canceled) {
			return nil, ErrClosed
		}
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("no answer within %s: %w", r.timeout, context.DeadlineExceeded)
		}
		return nil, err
	}
	if reply == nil {
		return nil, errors.New("empty reply")
	}
	return reply, nil
}

// check accepts a reply only if it answers our question and the server could answer it; a
// name that does not exist counts as an answer.
func check(reply *dns.Msg, name string, qtype uint16) error {
	if !reply.Response || reply.Opcode != dns.OpcodeQuery {
		return errors.New("reply is not a query response")
	}
	if len(reply.Question) != 1 {
		return fmt.Errorf("reply carries %d questions, want 1", len(reply.Question))
	}
	if q := reply.Question[0]; q.Qtype != qtype || q.Qclass != dns.ClassINET || !strings.EqualFold(q.Name, name) {
		return fmt.Errorf("reply answers another question (%s)", strings.TrimSpace(q.String()))
	}
	switch reply.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return nil
	default:
		rcode, ok := dns.RcodeToString[reply.Rcode]
		if !ok {
			rcode = fmt.Sprintf("rcode %d", reply.Rcode)
		}
		return fmt.Errorf("server answered %s", rcode)
	}
}

// extract reads the qtype addresses of name out of a checked reply, following the CNAME chain
// in its answer section; records off the chain are ignored, since nothing vouches for them.
// When the chain ends on a name without addresses, next is that name, for a new query.
func extract(reply *dns.Msg, name string, qtype uint16) (addrs []netip.Addr, ttl uint32, next string, err error) {
	ttl = math.MaxUint32
	if reply.Rcode == dns.RcodeNameError {
		return nil, ttl, "", nil
	}
	target := name
	for range maxChainHops {
		cname := ""
		for _, rr := range reply.Answer {
			h := rr.Header()
			if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, target) {
				continue
			}
			var addr netip.Addr
			var ok bool
			switch v := rr.(type) {
			case *dns.A:
				if qtype == dns.TypeA {
					addr, ok = netip.AddrFromSlice(v.A.To4())
				}
			case *dns.AAAA:
				if qtype == dns.TypeAAAA {
					addr, ok = netip.AddrFromSlice(v.AAAA.To16())
				}
			case *dns.CNAME:
				if cname == "" && v.Target != "" {
					cname = v.Target
					ttl = min(ttl, h.Ttl)
				}
			}
			if ok {
				addrs = append(addrs, addr)
				ttl = min(ttl, h.Ttl)
			}
		}
		if len(addrs) > 0 {
			return addrs, ttl, "", nil
		}
		if cname == "" {
			if target == name || hasSOA(reply.Ns) {
				// No data for the name we asked, or a negative answer for the end of
				// the chain: either way the server has spoken.
				return nil, math.MaxUint32, "", nil
			}
			return nil, ttl, target, nil
		}
		target = cname
	}
	return nil, ttl, "", fmt.Errorf("CNAME chain longer than %d links", maxChainHops)
}

// hasSOA tells a server's negative answer, which carries the zone's SOA, from a reply that
// simply stopped at a CNAME pointing out of the server's zone.
func hasSOA(rrs []dns.RR) bool {
	for _, rr := range rrs {
		if _, ok := rr.(*dns.SOA); ok {
			return true
		}
	}
	return false
}
