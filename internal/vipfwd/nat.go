package vipfwd

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/internal/ratelog"
)

// NATTable is the nftables table of the kernel path (docs/vips.md, The kernel path).
const NATTable = "meshdns_vipnat"

const (
	// natQueue bounds the entries waiting to be written; more are dropped (the connections
	// they stand for were forwarded, and the next one asks again).
	natQueue = 256
	// natMinTTL: an answer about to expire is not worth an entry.
	natMinTTL = 2 * time.Second
)

// natScript replaces the table (one transaction: the first line makes the deletion valid when
// the table does not exist) with its two maps, VIP and port to address and port, whose
// entries expire by themselves, and a nat output chain that runs before capture's (priority
// -100): a connection whose VIP and port have an entry is sent to its address there, and one
// without goes on to the redirect to the forwarder.
var natScript = `table inet ` + NATTable + `
delete table inet ` + NATTable + `
table inet ` + NATTable + ` {
	map v4 {
		type ipv4_addr . inet_service : ipv4_addr . inet_service
		flags timeout
	}
	map v6 {
		type ipv6_addr . inet_service : ipv6_addr . inet_service
		flags timeout
	}
	chain output {
		type nat hook output priority -110; policy accept;
		dnat ip to ip daddr . tcp dport map @v4
		dnat ip6 to ip6 daddr . tcp dport map @v6
	}
}
`

// NAT is the kernel path: once the forwarder has connected a VIP and port to an address, it
// has nftables send the later connections to that VIP and port straight to the address, by
// DNAT, until the answer's TTL ends. They then cost what a direct connection costs; the
// forwarder sees the first connection after each expiry only. Entries are written by one
// goroutine running nft, never on a connection's path.
type NAT struct {
	nft     string
	errs    *ratelog.Limiter
	queue   chan natEntry
	mu      sync.Mutex
	until   map[netip.AddrPort]time.Time // entries written and not expired: not written again
	metrics *natMetrics
}

type natEntry struct {
	vip, to netip.AddrPort
	ttl     time.Duration
}

// NewNAT installs the table (replacing one left by an earlier meshdns, whose entries then go)
// and writes entries until ctx ends. It needs nft and CAP_NET_ADMIN. The table outlives the
// process: a successor replaces it, entries expire, `nft delete table inet meshdns_vipnat`
// removes it.
func NewNAT(ctx context.Context, log *slog.Logger, reg prometheus.Registerer) (*NAT, error) {
	nft, err := exec.LookPath("nft")
	if err != nil {
		return nil, fmt.Errorf("--vip-nat: nft is needed (Debian package nftables): %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &NAT{nft: nft, errs: ratelog.New(log, refuseLogInterval, nil), queue: make(chan natEntry, natQueue),
		until: map[netip.AddrPort]time.Time{}, metrics: newNATMetrics(reg)}
	if err := n.run(natScript); err != nil {
		return nil, fmt.Errorf("--vip-nat: installing table inet %s: %w", NATTable, err)
	}
	go n.write(ctx)
	return n, nil
}

// Add asks for an entry sending connections to vip to the address to, for ttl. It does not
// block; an entry that exists already is not written again.
func (n *NAT) Add(vip, to netip.AddrPort, ttl time.Duration) {
	if n == nil || ttl < natMinTTL || vip.Addr().Is4() != to.Addr().Is4() {
		return // DNAT cannot change a connection's family
	}
	now := time.Now()
	n.mu.Lock()
	if now.Before(n.until[vip]) {
		n.mu.Unlock()
		return
	}
	n.until[vip] = now.Add(ttl)
	n.mu.Unlock()
	select {
	case n.queue <- natEntry{vip, to, ttl}:
	default:
		n.forget(vip)
		n.metrics.result("dropped")
	}
}

func (n *NAT) forget(vip netip.AddrPort) {
	n.mu.Lock()
	delete(n.until, vip)
	n.mu.Unlock()
}

func (n *NAT) write(ctx context.Context) {
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			n.sweep()
		case e := <-n.queue:
			m := "v4"
			if e.vip.Addr().Is6() {
				m = "v6"
			}
			// The kernel takes whole seconds; round down so the entry never outlives the answer.
			cmd := fmt.Sprintf("add element inet %s %s { %s . %d timeout %ds : %s . %d }\n", NATTable, m,
				e.vip.Addr(), e.vip.Port(), int(e.ttl/time.Second), e.to.Addr(), e.to.Port())
			if err := n.run(cmd); err != nil {
				n.forget(e.vip)
				n.metrics.result("failed")
				n.errs.Warn("VIP kernel path: entry not written; connections to this VIP keep going through the forwarder",
					"vip", e.vip.String(), "to", e.to.String(), "err", err)
				continue
			}
			n.metrics.result("written")
		}
	}
}

// sweep drops the expired entries from the record of those written.
func (n *NAT) sweep() {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for vip, until := range n.until {
		if now.After(until) {
			delete(n.until, vip)
		}
	}
}

func (n *NAT) run(script string) error {
	cmd := exec.Command(n.nft, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// natMetrics count the kernel path's entries. A nil *natMetrics records nothing.
type natMetrics struct {
	byResult map[string]prometheus.Counter
}

func newNATMetrics(reg prometheus.Registerer) *natMetrics {
	if reg == nil {
		return nil
	}
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshdns_vip_nat_entries_total",
		Help: "Entries of the VIP kernel path (--vip-nat) by result: written, failed (nft refused), dropped (queue full)."},
		[]string{"result"})
	reg.MustRegister(v)
	m := &natMetrics{byResult: map[string]prometheus.Counter{}}
	for _, r := range []string{"written", "failed", "dropped"} {
		m.byResult[r] = v.WithLabelValues(r)
	}
	return m
}

func (m *natMetrics) result(r string) {
	if m != nil {
		m.byResult[r].Inc()
	}
}
