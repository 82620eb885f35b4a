package dnsproxy

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"
)

// The fast path answers the common UDP question for a registry name (one A or AAAA question,
// no compression, at most an EDNS0 OPT record) straight from the packet's bytes with answer
// records packed once per snapshot, as most queries a DNS proxy sees are exactly that. Anything
// else, or an answer that would not fit, goes the general way (unpack, reply, pack).

const headerLen = 12

// packAnswers packs one record per address, each naming the question by a compression pointer
// to offset 12, so the bytes serve any spelling of the name the client used.
func packAnswers(addrs []netip.Addr, qtype uint16, ttl uint32) []byte {
	var out []byte
	for _, a := range addrs {
		rd := a.AsSlice()
		out = append(out, 0xC0, headerLen)
		out = binary.BigEndian.AppendUint16(out, qtype)
		out = binary.BigEndian.AppendUint16(out, dns.ClassINET)
		out = binary.BigEndian.AppendUint32(out, ttl)
		out = binary.BigEndian.AppendUint16(out, uint16(len(rd)))
		out = append(out, rd...)
	}
	return out
}

// fastQuery is what the fast path reads of a query.
type fastQuery struct {
	qend    int    // offset just past the question
	qtype   uint16 // A or AAAA
	edns    bool
	udpSize int
	do      bool
}

// parseFast reads a plain query; false sends it the general way.
func parseFast(b []byte, name *[256]byte) (q fastQuery, n int, ok bool) {
	if len(b) < headerLen+5 {
		return q, 0, false
	}
	flags := binary.BigEndian.Uint16(b[2:])
	// QR=0, opcode QUERY, no TC; one question, no answers or authority, at most one additional.
	if flags&0xF800 != 0 || flags&0x0200 != 0 || binary.BigEndian.Uint16(b[4:]) != 1 ||
		binary.BigEndian.Uint16(b[6:]) != 0 || binary.BigEndian.Uint16(b[8:]) != 0 {
		return q, 0, false
	}
	ar := binary.BigEndian.Uint16(b[10:])
	if ar > 1 {
		return q, 0, false
	}
	off := headerLen
	for {
		if off >= len(b) {
			return q, 0, false
		}
		l := int(b[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(b) || n+l+1 > 254 {
			return q, 0, false // a pointer, an extended label, or too long
		}
		for _, c := range b[off : off+l] {
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return q, 0, false // bytes the text form escapes
			}
			name[n] = c
			n++
		}
		name[n] = '.'
		n++
		off += l
	}
	if n == 0 || off+4 > len(b) {
		return q, 0, false
	}
	q.qtype = binary.BigEndian.Uint16(b[off:])
	if (q.qtype != dns.TypeA && q.qtype != dns.TypeAAAA) || binary.BigEndian.Uint16(b[off+2:]) != dns.ClassINET {
		return q, 0, false
	}
	q.qend = off + 4
	q.udpSize = dns.MinMsgSize
	rest := b[q.qend:]
	if ar == 1 {
		// Only an OPT record: root name, type 41, class = UDP size, TTL = flags, no options needed.
		if len(rest) < 11 || rest[0] != 0 || binary.BigEndian.Uint16(rest[1:]) != dns.TypeOPT ||
			int(binary.BigEndian.Uint16(rest[9:]))+11 != len(rest) || rest[6] != 0 /* version 0 */ {
			return q, 0, false
		}
		q.edns = true
		q.udpSize = max(int(binary.BigEndian.Uint16(rest[3:])), dns.MinMsgSize)
		q.do = rest[7]&0x80 != 0
	} else if len(rest) != 0 {
		return q, 0, false
	}
	return q, n, true
}

// fastReply appends to out the answer to packet b from the table, or returns false.
func (s *Server) fastReply(b []byte, out []byte) ([]byte, bool) {
	var name [256]byte
	q, n, ok := parseFast(b, &name)
	if !ok {
		return nil, false
	}
	e := (*s.table.Load())[string(name[:n])]
	if e == nil {
		return nil, false
	}
	answers, count := e.wireA, len(e.A)
	if q.qtype == dns.TypeAAAA {
		answers, count = e.wireAAAA, len(e.AAAA)
	}
	size := q.qend + len(answers)
	if q.edns {
		size += 11
	}
	if size > q.udpSize {
		return nil, false // the general path truncates
	}
	out = append(out, b[:headerLen]...)
	// QR and AA set; RD and CD kept from the query; rcode NOERROR.
	flags := binary.BigEndian.Uint16(b[2:])
	binary.BigEndian.PutUint16(out[2:], 0x8400|flags&0x0100|flags&0x0010)
	binary.BigEndian.PutUint16(out[6:], uint16(count))
	var arcount uint16
	if q.edns {
		arcount = 1
	}
	binary.BigEndian.PutUint16(out[10:], arcount)
	out = append(out, b[headerLen:q.qend]...)
	out = append(out, answers...)
	if q.edns {
		var ttl uint32
		if q.do {
			ttl = 0x8000
		}
		out = append(out, 0)
		out = binary.BigEndian.AppendUint16(out, dns.TypeOPT)
		out = binary.BigEndian.AppendUint16(out, uint16(q.udpSize))
		out = binary.BigEndian.AppendUint32(out, ttl)
		out = binary.BigEndian.AppendUint16(out, 0)
	}
	s.registry.Add(1)
	return out, true
}
