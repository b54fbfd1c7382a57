package table

import (
	"strings"
	"unsafe"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/miekg/dns"
)

// A table is built once, read until the next build replaces it, and then dropped whole. Its
// nodes, records and names are hundreds of thousands of small objects at 100k names. Made one
// by one, they share the heap's spans with the garbage of the build and of the snapshot it is
// built from; once that garbage is collected, those spans stay in use, partly empty, as long
// as the table lives (about 11 MiB, half the table, at 100k names in an agent that rebuilds on
// every change). The builder makes them in chunks of chunkBytes instead: large objects, which
// share a span with nothing and leave the heap with the table.
const chunkBytes = 64 << 10

// chunks are the builder's chunks of each kind; a nil *chunks makes each value with new.
type chunks struct {
	nodes   slab[Node]
	origins slab[origin]
	a       slab[aRecord]
	aaaa    slab[aaaaRecord]
	srv     slab[dns.SRV]
	lists   rrSlab
	names   nameChunks
}

func (c *chunks) origin(desc, namespace string) *origin {
	o := c.origins.new()
	*o = origin{desc: desc, namespace: namespace}
	return o
}

func (c *chunks) newA() *aRecord {
	if c == nil {
		return new(aRecord)
	}
	return c.a.new()
}

func (c *chunks) newAAAA() *aaaaRecord {
	if c == nil {
		return new(aaaaRecord)
	}
	return c.aaaa.new()
}

// room makes n's records able to take more records without a copy, with room to double as
// append would.
func (c *chunks) room(n *Node, more int) {
	size := len(n.rrs) + more
	if c == nil || size <= cap(n.rrs) {
		return
	}
	l := c.lists.make(max(size, 2*len(n.rrs)))
	n.rrs = append(l, n.rrs...)
}

// slab hands out values of T from chunks.
type slab[T any] struct{ free []T }

func (s *slab[T]) new() *T {
	if len(s.free) == 0 {
		s.free = make([]T, max(chunkBytes/int(unsafe.Sizeof(*new(T))), 1))
	}
	p := &s.free[0]
	s.free = s.free[1:]
	return p
}

// rrSlab hands out empty record lists of a capacity from chunks.
type rrSlab struct{ free []dns.RR }

func (s *rrSlab) make(n int) []dns.RR {
	if n > len(s.free) {
		if n > chunkBytes/16/4 {
			return make([]dns.RR, 0, n)
		}
		s.free = make([]dns.RR, chunkBytes/16)
	}
	l := s.free[:0:n]
	s.free = s.free[n:]
	return l
}

// nameChunks holds the names the builder makes, written one after the other into chunks. A name is
// never changed once made (strings share its bytes).
type nameChunks struct{ buf []byte }

// concat returns the concatenation of parts, lowercased when lower is set.
func (a *nameChunks) concat(lower bool, parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return ""
	}
	if n > cap(a.buf)-len(a.buf) {
		if n > chunkBytes/4 { // too long to share a chunk
			s := strings.Join(parts, "")
			if lower {
				s = dnsname.Lower(s)
			}
			return s
		}
		a.buf = make([]byte, 0, chunkBytes)
	}
	start := len(a.buf)
	for _, p := range parts {
		a.buf = append(a.buf, p...)
	}
	s := a.buf[start:]
	if lower {
		toLower(s)
	}
	return unsafe.String(&s[0], len(s))
}

func toLower(b []byte) {
	for i, c := range b {
		b[i] = dnsname.LowerByte(c)
	}
}
