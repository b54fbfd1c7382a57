package cache

import "github.com/miekg/dns"

// Get is Lookup without Until, for tests that check what is served.
func (c *Cache) Get(req *dns.Msg) (resp *dns.Msg, st Status, prefetch bool) {
	f := c.Lookup(req)
	return f.Msg, f.Status, f.Prefetch
}
