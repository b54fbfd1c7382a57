package upstream

import (
	"context"
	"fmt"
	"sync"

	"github.com/miekg/dns"
)

// Policy chooses the order in which servers are asked.
type Policy int

const (
	// Sequential asks the servers in their configured order, the next one only after the
	// previous one failed (glibc's behaviour without "options rotate").
	Sequential Policy = iota
	// Random starts at a random server and goes on with the others in order, spreading load.
	Random
	// Parallel asks every healthy server at once; the first usable answer wins.
	Parallel
)

var policyNames = [...]string{Sequential: "sequential", Random: "random", Parallel: "parallel"}

func (p Policy) String() string {
	if p >= 0 && int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy parses the value of the upstream policy flag.
func ParsePolicy(s string) (Policy, error) {
	for p, name := range policyNames {
		if s == name {
			return Policy(p), nil
		}
	}
	return 0, fmt.Errorf("upstream policy %q: want sequential, random or parallel", s)
}

// order returns the servers in the order the policy asks them, before health is considered.
func (f *Forwarder) order(servers []*server) []*server {
	if f.opts.Policy != Random || len(servers) < 2 {
		return servers
	}
	start := f.randIntN(len(servers))
	out := make([]*server, 0, len(servers))
	return append(append(out, servers[start:]...), servers[:start]...)
}

// resolve asks the servers for proto's question according to policy and health.
func (f *Forwarder) resolve(ctx context.Context, proto *dns.Msg, tcp bool) (*dns.Msg, error) {
	servers := f.current()
	if len(servers) == 0 {
		return nil, errNoServers
	}
	p := f.plan(servers)
	defer p.done()
	if f.opts.Policy == Parallel && len(p.servers) > 1 {
		return f.parallel(ctx, p.servers, proto, tcp)
	}
	return f.walk(ctx, p.servers, proto, tcp)
}

// walk asks servers one after the other until one answers with something other than SERVFAIL
// or REFUSED. It returns the upstream's message, not yet a reply to the client. The last
// server has none after it to fail over to: it is given what is left of the deadline.
func (f *Forwarder) walk(ctx context.Context, servers []*server, proto *dns.Msg, tcp bool) (*dns.Msg, error) {
	var out outcome
	for i, s := range servers {
		if out.add(f.try(ctx, s, proto, tcp, i == len(servers)-1)) {
			break
		}
		if ctxErr(ctx) != nil {
			break
		}
	}
	return out.result()
}

// parallel asks all servers at once, each until the deadline, and returns the first answer that
// is not SERVFAIL or REFUSED; such failures only count once every server has had its say. The losing tries are
// cancelled, and parallel returns only after they have ended.
func (f *Forwarder) parallel(ctx context.Context, servers []*server, proto *dns.Msg, tcp bool) (*dns.Msg, error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	attempts := make(chan attempt, len(servers)) // buffered: losers never block
	for _, s := range servers {
		wg.Go(func() { attempts <- f.try(ctx, s, proto, tcp, true) }) // nobody to fail over to
	}
	var out outcome
	for range servers {
		if out.add(<-attempts) {
			break
		}
	}
	return out.result()
}

// outcome gathers the tries of one Forward.
type outcome struct {
	good    *dns.Msg
	failed  *dns.Msg // last SERVFAIL/REFUSED reply: better than an error
	lastErr error
}

// add records one try and reports whether it settles the query.
func (o *outcome) add(a attempt) bool {
	switch {
	case a.err != nil:
		o.lastErr = fmt.Errorf("upstream %s: %w", a.s.addr, a.err)
	case a.typ.Failure():
		o.failed = a.resp
	default:
		o.good = a.resp
		return true
	}
	return false
}

func (o *outcome) result() (*dns.Msg, error) {
	switch {
	case o.good != nil:
		return o.good, nil
	case o.failed != nil:
		return o.failed, nil
	}
	return nil, o.lastErr
}
