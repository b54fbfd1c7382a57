package server

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/response"
	"github.com/miekg/dns"
)

// The fast path answers a UDP query without unpacking it, from a reply packed earlier for
// the same question: a table answer (hit, autopath, NXDOMAIN, NODATA) depends on nothing but
// the question, the client and the table, so it is packed once per table and then copied,
// with the query's ID, RD and CD bits, question spelling and EDNS patched in. Only plain
// queries take it (one question of letters, digits, '-' and '_'; no or a plain OPT record);
// everything else, and every first query of a name, takes the general path, which fills the
// store.
//
// This file holds the whole of it: the socket reader's side (fastReply, parseQuery), the
// general path's side that stores a reply and answers from it (reuse, packed, canonical), and
// the store between them.

// Header bits (RFC 1035 §4.1.1).
const (
	headerLen  = 12
	bitQR      = 1 << 15
	maskOpcode = 0xf << 11
	bitTC      = 1 << 9
	bitRD      = 1 << 8
	bitAD      = 1 << 5
	bitCD      = 1 << 4
	// optLen is an OPT record without options: root name, type, class, TTL, RDLENGTH.
	optLen = 11
)

// fastReply answers pkt, from the client at from, from the store into out, or returns nil for
// the general path. key and q are the caller's, reused from query to query: the fast path
// allocates nothing.
func (s *Server) fastReply(pkt []byte, from netip.Addr, key, out []byte, q *wireQuery) []byte {
	if s.fast == nil || !parseQuery(pkt, key, q) {
		return nil
	}
	s.keyView(q, from)
	p := s.fast.get(q, s.res.Epoch())
	if p == nil {
		return nil
	}
	var buf [cookieReplyLen]byte
	reply := p.reply(q, s.cookieAnswer(&buf, q.cookie, from), s.opts.MaxUDPSize, out)
	if reply != nil {
		p.counts.inc()
	}
	return reply
}

// reuse stores a reusable reply for the fast path and answers the query from it as the fast
// path would, counting it. It returns nil when the query or reply is not for the fast path.
func (s *Server) reuse(pkt []byte, from netip.Addr, req *dns.Msg, rep resolver.Reply, tcp bool) []byte {
	if s.fast == nil || tcp || !rep.Reusable {
		return nil
	}
	var q wireQuery
	if !parseQuery(pkt, make([]byte, 0, keyCap), &q) {
		return nil
	}
	s.keyView(&q, from)
	p := newPacked(req, rep)
	if p == nil {
		return nil
	}
	p.counts = s.opts.Metrics.counters(qtypeLabel(req.Question[0].Qtype), rep, "udp")
	s.fast.put(q.key, p)
	var buf [cookieReplyLen]byte
	out := p.reply(&q, s.cookieAnswer(&buf, q.cookie, from), s.opts.MaxUDPSize, nil)
	if out != nil {
		p.counts.inc()
	}
	return out
}

// keyCap is the capacity of a key: the name (at most 255 bytes), type, class, the bits of
// keyBits and the view number.
const keyCap = 255 + 4 + 1 + 2

// keyView ends q's key with the number of the client's view, with Views: the same question
// from clients of different contexts has different answers.
func (s *Server) keyView(q *wireQuery, from netip.Addr) {
	if s.opts.Views != nil {
		var id uint16
		if w := s.opts.Views.lookup(from); w != nil {
			id = w.id
		}
		q.key = append(q.key, byte(id>>8), byte(id))
	}
}

// wireQuery is what the fast path reads from a packet.
type wireQuery struct {
	id    uint16
	flags uint16 // the query's RD and CD bits, echoed in the reply
	ad    bool
	qname []byte // the question name as sent, to restore its spelling in the reply
	// key is the question in wire form with the name lowercased, then the DO, CD and AD bits:
	// the store's key.
	key     []byte
	edns    bool
	do      bool
	udpSize uint16
	cookie  []byte // the COOKIE option's data as sent, nil without one
}

// parseQuery reads a plain query from pkt into q, its key into key's array, and reports
// whether the fast path may answer it. Anything else takes the general path, which alone
// decides on malformed, unusual or rejected packets (FORMERR, NOTIMP, BADVERS, REFUSED or no
// reply): a plain query breaks none of the server's rules (rules.go) and is of class IN and a
// type the resolver does not refuse (resolver.QtypeRcode).
func parseQuery(pkt, key []byte, q *wireQuery) bool {
	arcount, ok := triage(pkt)
	if !ok {
		return false
	}
	key, off, ok := readQuestion(pkt, key[:0])
	if !ok || binary.BigEndian.Uint16(pkt[off-2:]) != dns.ClassINET ||
		resolver.QtypeRcode(binary.BigEndian.Uint16(pkt[off-4:])) != dns.RcodeSuccess {
		return false
	}
	flags := binary.BigEndian.Uint16(pkt[2:])
	*q = wireQuery{id: binary.BigEndian.Uint16(pkt), flags: flags & (bitRD | bitCD), ad: flags&bitAD != 0,
		qname: pkt[headerLen : off-4]}
	if rest := pkt[off:]; arcount == 0 && len(rest) != 0 || arcount == 1 && !parseOPT(rest, q) {
		return false
	}
	q.key = append(key, q.keyBits())
	return true
}

// triage decides from the 12-byte header alone, before anything is read, whether pkt can be a
// plain query. It leaves to the general path a packet that
//   - is shorter than a header and the shortest question (root name, type, class);
//   - is a response (QR), not a QUERY (opcode) or truncated (TC);
//   - has other than one question;
//   - has answer or authority records;
//   - has more than one additional record (room for one OPT record; the general path answers
//     several with FORMERR).
//
// It returns the number of additional records.
func triage(pkt []byte) (arcount uint16, ok bool) {
	if len(pkt) < headerLen+5 {
		return 0, false
	}
	flags := binary.BigEndian.Uint16(pkt[2:])
	if flags&(bitQR|maskOpcode|bitTC) != 0 || binary.BigEndian.Uint16(pkt[4:]) != 1 ||
		binary.BigEndian.Uint16(pkt[6:]) != 0 || binary.BigEndian.Uint16(pkt[8:]) != 0 {
		return 0, false
	}
	arcount = binary.BigEndian.Uint16(pkt[10:])
	return arcount, arcount <= 1
}

// readQuestion walks the question after the header: a name whose labels hold letters, digits,
// '-' and '_' only (no compression pointer, nothing the general path would spell escaped),
// then type and class. It appends the name lowercased, type and class to key, and returns key
// and the offset past the question.
func readQuestion(pkt, key []byte) ([]byte, int, bool) {
	off := headerLen
	for off < len(pkt) && pkt[off] != 0 {
		l := int(pkt[off])
		// l > 63 also rules out compression pointers, which no question needs; the name, root
		// label included, is at most 255 bytes.
		if l > dnsname.MaxLabelLen || off+1+l >= len(pkt) || len(key)+1+l+1 > 255 {
			return nil, 0, false
		}
		var ok bool
		if key, ok = appendLabel(key, pkt[off+1:off+1+l]); !ok {
			return nil, 0, false
		}
		off += 1 + l
	}
	off++ // the root label
	if off+4 > len(pkt) {
		return nil, 0, false
	}
	key = append(key, 0)
	key = append(key, pkt[off:off+4]...) // type and class
	return key, off + 4, true
}

// appendLabel appends label, length first, lowercased (RFC 4343), to key; false when it holds
// a byte other than a letter, digit, '-' or '_'.
func appendLabel(key, label []byte) ([]byte, bool) {
	key = append(key, byte(len(label)))
	for _, c := range label {
		c = dnsname.LowerByte(c)
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, false
		}
		key = append(key, c)
	}
	return key, true
}

// parseOPT reads the OPT record that ends a query: version 0, and options (if any) only of
// the kinds the fast path handles (cookie, answered per query; padding, ignored) and
// well-formed (optionRcode), since the general path answers FORMERR to a malformed option.
func parseOPT(b []byte, q *wireQuery) bool {
	if len(b) < optLen || b[0] != 0 || binary.BigEndian.Uint16(b[1:]) != dns.TypeOPT || b[6] != 0 {
		return false
	}
	opts := b[optLen:]
	if int(binary.BigEndian.Uint16(b[9:])) != len(opts) {
		return false
	}
	for len(opts) > 0 {
		if len(opts) < 4 {
			return false
		}
		code, l := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
		if (code != dns.EDNS0COOKIE && code != dns.EDNS0PADDING) || 4+l > len(opts) ||
			optionRcode(code, opts[4:4+l]) != dns.RcodeSuccess {
			return false
		}
		if code == dns.EDNS0COOKIE && q.cookie == nil { // the first one counts (RFC 7873 §5.2)
			q.cookie = opts[4 : 4+l : 4+l]
		}
		opts = opts[4+l:]
	}
	q.edns, q.do, q.udpSize = true, b[7]&0x80 != 0, binary.BigEndian.Uint16(b[3:])
	return true
}

// keyBits are the DO, CD and AD bits that end the key: a cached upstream answer depends on
// them (DNSSEC records, validation, the AD bit), so each combination is stored apart.
func (q *wireQuery) keyBits() byte {
	var bits byte
	if q.do {
		bits |= 4
	}
	if q.flags&bitCD != 0 {
		bits |= 2
	}
	if q.ad {
		bits |= 1
	}
	return bits
}

// limit is the largest UDP reply to q (replyLimit).
func (q *wireQuery) limit(maxSize int) int { return replyLimit(q.edns, q.udpSize, maxSize) }

// packed is a reply ready to be copied: ID 0, RD and CD clear, no OPT, names of the question
// lowercased; the answer's owner names point at the question (compression), so restoring the
// question's spelling restores theirs.
type packed struct {
	wire   []byte
	epoch  uint64
	until  time.Time // zero: valid for the whole epoch
	counts counters  // what each reply given from it counts
}

// newPacked returns the stored form of rep, the reply to the query q (req unpacked), or nil
// when rep cannot be stored.
func newPacked(req *dns.Msg, rep resolver.Reply) *packed {
	// The general path spells owners as the question in the answer section of table replies,
	// and in every section of cached upstream replies (the cache serves them so).
	wire := canonical(req, rep.Msg, rep.Result == resolver.ResultCacheHit)
	if wire == nil {
		return nil
	}
	return &packed{wire: wire, epoch: rep.Epoch, until: rep.Until}
}

// valid reports whether p still answers in epoch.
func (p *packed) valid(epoch uint64) bool {
	return p.epoch == epoch && (p.until.IsZero() || time.Now().Before(p.until))
}

// reply appends to out the reply to q, with cookie (the COOKIE option's data, nil for none)
// in its OPT record, or returns nil when it would not fit q's limit under maxSize, the
// server's MaxUDPSize (the general path then truncates it).
func (p *packed) reply(q *wireQuery, cookie []byte, maxSize int, out []byte) []byte {
	n := len(p.wire)
	if q.edns {
		n += optLen
		if cookie != nil {
			n += 4 + len(cookie)
		}
	}
	if n > q.limit(maxSize) {
		return nil
	}
	out = append(out[:0], p.wire...)
	binary.BigEndian.PutUint16(out, q.id)
	binary.BigEndian.PutUint16(out[2:], binary.BigEndian.Uint16(out[2:])|q.flags)
	copy(out[headerLen:], q.qname)
	if q.edns {
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
		var doBit byte
		if q.do {
			doBit = 0x80
		}
		out = append(out, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(ednsSize>>8), byte(ednsSize&0xff),
			0, 0, doBit, 0, 0, 0)
		if cookie != nil {
			out = appendCookie(out, cookie)
		}
	}
	return out
}

// appendCookie appends the COOKIE option with data to out, which ends with an OPT record
// without options, and sets that record's RDLENGTH.
func appendCookie(out, data []byte) []byte {
	binary.BigEndian.PutUint16(out[len(out)-2:], uint16(4+len(data)))
	out = binary.BigEndian.AppendUint16(out, dns.EDNS0COOKIE)
	out = binary.BigEndian.AppendUint16(out, uint16(len(data)))
	return append(out, data...)
}

// canonical packs resp (the answer to req) in the stored form, or returns nil when it cannot
// be packed or is larger than any UDP client accepts.
//
// The question is packed under a stand-in name of the same shape whose labels no real name
// has, and so are the records owned by it: their owners become pointers to the question, and
// no other name can be compressed into a part of it. Then the lowercased name replaces the
// stand-in. Each reply later writes the query's spelling there, and so only the question and
// the records owned by it take that spelling, as in the general path: a CNAME target sharing
// a suffix with the question keeps its own.
func canonical(req, resp *dns.Msg, allSections bool) []byte {
	if len(req.Question) != 1 || len(resp.Question) != 1 {
		return nil
	}
	spelled := req.Question[0].Name
	stand, err := standIn(spelled)
	if err != nil {
		return nil
	}
	m := resp.Copy()
	m.Id, m.RecursionDesired, m.CheckingDisabled = 0, false, false
	setServerBits(m)
	m.Question[0].Name = stand
	m.Extra = response.WithoutPerMessage(m.Extra)
	sections := [][]dns.RR{m.Answer}
	if allSections {
		sections = append(sections, m.Ns, m.Extra)
	}
	for _, rrs := range sections {
		for _, rr := range rrs {
			if h := rr.Header(); h.Name == spelled {
				h.Name = stand
			}
		}
	}
	m.Compress = true
	wire, err := m.Pack()
	if err != nil || len(wire) > MaxUDPSizeLimit {
		return nil
	}
	name := make([]byte, 256)
	n, err := dns.PackDomainName(dnsname.Lower(spelled), name, 0, nil, false)
	if err != nil || headerLen+n > len(wire) {
		return nil
	}
	copy(wire[headerLen:], name[:n])
	return wire
}

// standIn returns a name with the labels of name, each byte replaced by 0x01.
func standIn(name string) (string, error) {
	labels, ok := dns.IsDomainName(name)
	if !ok {
		return "", errNotName
	}
	var b strings.Builder
	for _, l := range dns.SplitDomainName(name)[:labels] {
		n := len(l) // plain names only reach here: no escapes in the label
		b.WriteString(strings.Repeat("\x01", n))
		b.WriteByte('.')
	}
	if labels == 0 {
		return ".", nil
	}
	return b.String(), nil
}

var errNotName = errors.New("not a domain name")

// store holds packed replies by question, for one epoch (table) at a time. Its size is
// bounded: a full shard evicts an arbitrary entry, so a flood of distinct names cannot grow
// it, only make the fast path miss.
type store struct {
	seed   maphash.Seed
	shards [storeShards]shard
}

const (
	storeShards = 16
	// shardCapacity and shardBytes bound each shard: 64k replies and 64 MiB in all, of which a
	// cluster's usual traffic (a few thousand names) uses a small part.
	shardCapacity = 4096
	shardBytes    = 4 << 20
)

type shard struct {
	mu    sync.RWMutex
	epoch uint64
	m     map[string]*packed
	bytes int      // of the replies in m
	_     [32]byte // keeps neighbouring shards' locks off one cache line
}

func newStore() *store {
	s := &store{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = map[string]*packed{}
	}
	return s
}

func (s *store) shard(key []byte) *shard {
	return &s.shards[maphash.Bytes(s.seed, key)%storeShards]
}

// get returns the reply stored for q in epoch, or nil.
func (s *store) get(q *wireQuery, epoch uint64) *packed {
	sh := s.shard(q.key)
	sh.mu.RLock()
	p := sh.m[string(q.key)]
	sh.mu.RUnlock()
	if p == nil || !p.valid(epoch) {
		return nil
	}
	return p
}

// put stores p for key. Entries of older epochs are dropped on the way; p itself is dropped
// when a newer epoch has been stored already (it was resolved against an old table).
func (s *store) put(key []byte, p *packed) {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	switch {
	case p.epoch < sh.epoch:
		return
	case p.epoch > sh.epoch:
		clear(sh.m)
		sh.epoch, sh.bytes = p.epoch, 0
	}
	if old := sh.m[string(key)]; old != nil {
		sh.bytes -= len(old.wire)
		delete(sh.m, string(key))
	}
	for k, e := range sh.m { // map order is random: an arbitrary entry goes
		if len(sh.m) < shardCapacity && sh.bytes+len(p.wire) <= shardBytes {
			break
		}
		sh.bytes -= len(e.wire)
		delete(sh.m, k)
	}
	sh.m[string(key)] = p
	sh.bytes += len(p.wire)
}
