package server

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/meshdns/meshdns/internal/resolver"
)

// Views gives clients their own context by source address: a node agent answers each pod of
// its node as the pod's namespace and search list ask (docs/nodeagent.md). A client whose
// address it does not hold gets Options.Client. Each distinct context has a number, part of
// the fast path's key, so that pods sharing a context share its packed replies and no pod
// is ever sent a reply packed for another context.
type Views struct {
	current atomic.Pointer[viewSet]

	mu  sync.Mutex
	ids map[string]uint16 // context (namespace and search list) to its number; never shrinks
}

// viewSet holds the views by address, IPv4 addresses apart: a uint32 key takes the map's
// fastest path, and lookups are on the fast path of every query.
type viewSet struct {
	v4 map[uint32]*view
	v6 map[[16]byte]*view
}

func (vs *viewSet) get(a netip.Addr) *view {
	if a.Is4() {
		b := a.As4()
		return vs.v4[binary.BigEndian.Uint32(b[:])]
	}
	return vs.v6[a.As16()]
}

func (vs *viewSet) put(a netip.Addr, w *view) {
	if a.Is4() {
		b := a.As4()
		vs.v4[binary.BigEndian.Uint32(b[:])] = w
		return
	}
	vs.v6[a.As16()] = w
}

// view is one client context and its number (0 is Options.Client's).
type view struct {
	client resolver.Client
	id     uint16
}

// maxViews bounds the numbers handed out; contexts beyond it share the last number, which
// then only makes their fast-path replies miss each other. A node has a few hundred pods.
const maxViews = 1<<16 - 1

// NewViews returns an empty set of views.
func NewViews() *Views {
	v := &Views{ids: map[string]uint16{}}
	v.current.Store(&viewSet{})
	return v
}

// Set replaces the clients' contexts: each address of clients is answered with its Client
// (only Namespace and Search are used). Queries already being answered keep the old ones.
func (v *Views) Set(clients map[netip.Addr]resolver.Client) {
	v.mu.Lock()
	defer v.mu.Unlock()
	byContext := map[string]*view{}
	next := &viewSet{v4: map[uint32]*view{}, v6: map[[16]byte]*view{}}
	for addr, c := range clients {
		key := c.Namespace + "\x00" + strings.Join(c.Search, "\x00")
		w := byContext[key]
		if w == nil {
			id, ok := v.ids[key]
			if !ok {
				id = uint16(min(len(v.ids)+1, maxViews))
				v.ids[key] = id
			}
			w = &view{client: resolver.Client{Namespace: c.Namespace, Search: slices.Clone(c.Search)}, id: id}
			byContext[key] = w
		}
		next.put(clientAddr(addr), w)
	}
	v.current.Store(next)
}

// lookup returns the view of the client at addr, nil when it has none.
func (v *Views) lookup(addr netip.Addr) *view {
	if v == nil {
		return nil
	}
	return v.current.Load().get(addr)
}

// Lookup returns the context of the client at addr, false when it has none (for tests and
// explain).
func (v *Views) Lookup(addr netip.Addr) (resolver.Client, bool) {
	if w := v.lookup(clientAddr(addr)); w != nil {
		return w.client, true
	}
	return resolver.Client{}, false
}

// Len is the number of client addresses with a view.
func (v *Views) Len() int {
	vs := v.current.Load()
	return len(vs.v4) + len(vs.v6)
}

// clientFor is the context of the client at from (clientAddr's form).
func (s *Server) clientFor(from netip.Addr) resolver.Client {
	if w := s.opts.Views.lookup(from); w != nil {
		return w.client
	}
	return s.opts.Client
}
