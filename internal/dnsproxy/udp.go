package dnsproxy

import (
	"errors"
	"net"
	"runtime"
	"sync"

	"github.com/miekg/dns"
)

// udpServer reads queries from one socket with a reader per CPU: the fast path answers in
// the reader; other queries, which may wait on the upstream, go to a goroutine each, at most
// slowMax at once (beyond it SERVFAIL, counted with the in-flight rejections).
type udpServer struct {
	s    *Server
	pc   net.PacketConn
	slow chan struct{}
	wg   sync.WaitGroup
}

func (s *Server) serveUDP(pc net.PacketConn) error {
	u := &udpServer{s: s, pc: pc, slow: make(chan struct{}, s.cfg.MaxInFlight+DefaultMaxTCPConns)}
	readers := max(runtime.GOMAXPROCS(0), 1)
	errc := make(chan error, readers)
	for range readers {
		go func() { errc <- u.read() }()
	}
	var first error
	for range readers {
		if err := <-errc; first == nil {
			first = err
		}
	}
	u.wg.Wait()
	return first
}

// read serves until the socket is closed (nil) or fails.
func (u *udpServer) read() error {
	buf := make([]byte, dns.MaxMsgSize)
	out := make([]byte, 0, dns.MinMsgSize)
	for {
		n, addr, err := u.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if resp, ok := u.s.fastReply(buf[:n], out[:0]); ok {
			u.pc.WriteTo(resp, addr)
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		select {
		case u.slow <- struct{}{}:
			u.wg.Go(func() {
				defer func() { <-u.slow }()
				u.general(pkt, addr)
			})
		default:
			u.s.rejected.Add(1)
			if m := failure(pkt, dns.RcodeServerFailure); m != nil {
				u.pc.WriteTo(m, addr)
			}
		}
	}
}

// general answers one packet the way every other query is answered: unpack, reply, fit.
func (u *udpServer) general(pkt []byte, addr net.Addr) {
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		u.s.malformed.Add(1)
		if m := failure(pkt, dns.RcodeFormatError); m != nil {
			u.pc.WriteTo(m, addr)
		}
		return
	}
	resp := u.s.reply(req)
	if resp == nil {
		return
	}
	u.s.truncateFor(req, resp)
	b, err := resp.Pack()
	if err != nil {
		u.s.log.Debug("dns: pack answer", "err", err)
		return
	}
	u.pc.WriteTo(b, addr)
}

// failure is a bare header answering pkt's ID with rcode, or nil when pkt is no query.
func failure(pkt []byte, rcode int) []byte {
	if len(pkt) < headerLen || pkt[2]&0x80 != 0 {
		return nil
	}
	m := make([]byte, headerLen)
	copy(m, pkt[:2])
	m[2] = 0x80 | pkt[2]&0x79 // QR, the opcode and RD kept
	m[3] = byte(rcode)
	return m
}
