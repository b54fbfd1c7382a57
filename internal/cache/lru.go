package cache

import "container/list"

// lru is one store, in order of use. It is not safe for concurrent use: Cache.mu guards it.
// It does not bound itself: Cache.makeRoom evicts across both stores.
type lru struct {
	order list.List // of *entry, most recently used first
	items map[key]*list.Element
	bytes int // estimated heap held by the entries (entry.size)
}

func newLRU() *lru {
	return &lru{items: make(map[key]*list.Element)}
}

// get returns the entry for k, marking it most recently used, or nil.
func (l *lru) get(k key) *entry {
	el, ok := l.items[k]
	if !ok {
		return nil
	}
	l.order.MoveToFront(el)
	return el.Value.(*entry)
}

// add stores e, which must not be present, as the most recently used.
func (l *lru) add(e *entry) {
	l.items[e.key] = l.order.PushFront(e)
	l.bytes += e.size
}

// evictOldest drops the least recently used entry; l must not be empty.
func (l *lru) evictOldest() {
	l.remove(l.order.Back().Value.(*entry).key)
}

func (l *lru) remove(k key) {
	if el, ok := l.items[k]; ok {
		l.order.Remove(el)
		delete(l.items, k)
		l.bytes -= el.Value.(*entry).size
	}
}

func (l *lru) len() int { return l.order.Len() }

func (l *lru) clear() {
	l.items = make(map[key]*list.Element) // clear would keep the grown map's memory
	l.order.Init()
	l.bytes = 0
}
