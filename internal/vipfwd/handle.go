package vipfwd

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/meshdns/meshdns/internal/table"
	"github.com/miekg/dns"
)

// handle forwards one redirected connection, or refuses it.
func (f *Forwarder) handle(c *net.TCPConn) {
	dst, err := f.origDst(c)
	if err != nil {
		f.refuse(c, resultNoOrigDst, "err", err)
		return
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	t := f.opts.Resolver.Table()
	var target *table.VIPTarget
	if t != nil {
		target, _ = t.VIPTarget(dst.Addr())
	}
	switch {
	case target == nil:
		f.refuse(c, resultNoVIP, "dst", dst.String())
		return
	case !target.HasPort(dst.Port()):
		f.refuse(c, resultNoPort, "dst", dst.String(), "host", target.Host)
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(f.ctx, f.opts.DialTimeout)
	addrs, ttl := f.addrs(ctx, target, t.TTL(), dst.Addr().Is6())
	if len(addrs) == 0 {
		cancel()
		f.refuse(c, resultUnresolved, "dst", dst.String(), "host", target.Host)
		return
	}
	cancel()
	up, err := f.dial(addrs, dst.Port())
	if err != nil {
		f.refuse(c, resultDialFailed, "dst", dst.String(), "host", target.Host, "err", err)
		return
	}
	f.opts.Metrics.dialed(time.Since(start).Seconds())
	f.opts.NAT.Add(dst, up.RemoteAddr().(*net.TCPAddr).AddrPort(), ttl)
	f.opts.Metrics.result(resultForwarded)
	f.opts.Metrics.activeAdd(1)
	defer f.opts.Metrics.activeAdd(-1)
	f.pipe(c, up)
}

// addrs returns the addresses of target of the connection's family, and how long they hold:
// a STATIC entry's endpoints, for the table's TTL (tableTTL seconds), else the host's upstream
// answer (through the resolver's cache), for the least TTL of its records.
func (f *Forwarder) addrs(ctx context.Context, target *table.VIPTarget, tableTTL uint32, v6 bool) ([]netip.Addr, time.Duration) {
	var out []netip.Addr
	if target.Static {
		for _, ip := range target.Endpoints {
			if ip.Is6() == v6 {
				out = append(out, ip)
			}
		}
		return out, time.Duration(tableTTL) * time.Second
	}
	qtype := dns.TypeA
	if v6 {
		qtype = dns.TypeAAAA
	}
	req := new(dns.Msg)
	req.SetQuestion(target.Host, qtype)
	rep := f.opts.Resolver.Upstream(ctx, req, f.opts.Client)
	if rep.Msg == nil || rep.Msg.Rcode != dns.RcodeSuccess {
		return nil, 0
	}
	ttl := uint32(0)
	for i, rr := range rep.Msg.Answer {
		if i == 0 || rr.Header().Ttl < ttl {
			ttl = rr.Header().Ttl
		}
		switch rr := rr.(type) {
		case *dns.A:
			if ip, ok := netip.AddrFromSlice(rr.A.To4()); ok && !v6 {
				out = append(out, ip)
			}
		case *dns.AAAA:
			if ip, ok := netip.AddrFromSlice(rr.AAAA); ok && v6 {
				out = append(out, ip)
			}
		}
	}
	return out, time.Duration(ttl) * time.Second
}

// dial connects to the addresses in order, each within the dial timeout, and returns the
// first connection made. These connections keep Go's keep-alive probes: a host that vanishes
// is noticed long before the idle timeout.
func (f *Forwarder) dial(addrs []netip.Addr, port uint16) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: f.opts.DialTimeout}
	var err error
	for _, ip := range addrs {
		var c *net.TCPConn
		c, err = d.DialTCP(f.ctx, "tcp", netip.AddrPort{}, netip.AddrPortFrom(ip, port))
		if err == nil {
			return c, nil
		}
		if f.ctx.Err() != nil {
			break
		}
	}
	return nil, err
}
