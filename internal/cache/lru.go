package cache

import "container/list"

// lru is one bounded store. It is not safe for concurrent use: Cache.mu guards it.
type lru struct {
	max   int
	order list.List // of *entry, most recently used first
	items map[key]*list.Element
}

func newLRU(size int) *lru {
	return &lru{max: size, items: make(map[key]*list.Element)}
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

// add stores e, which must not be present, and returns how many entries it evicted.
func (l *lru) add(e *entry) (evicted int) {
	for l.order.Len() >= l.max {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.items, oldest.Value.(*entry).key)
		evicted++
	}
	l.items[e.key] = l.order.PushFront(e)
	return evicted
}

func (l *lru) remove(k key) {
	if el, ok := l.items[k]; ok {
		l.order.Remove(el)
		delete(l.items, k)
	}
}

func (l *lru) len() int { return l.order.Len() }

func (l *lru) clear() {
	clear(l.items)
	l.order.Init()
}
