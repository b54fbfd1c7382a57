package upstream

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/fairshare"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

var (
	flooder  = AddrSource(netip.MustParseAddr("127.0.0.2"))
	neighbor = AddrSource(netip.MustParseAddr("127.0.0.3"))
	third    = AddrSource(netip.MustParseAddr("::ffff:127.0.0.4")) // the same as 127.0.0.4
)

// TestSharesFailFlooderFirst walks the share rule (internal/fairshare) over 8 slots with
// Sources as keys, as the coalescer counts them: a source alone holds half; a newcomer is
// admitted while any slot is free; the source holding the most is refused first; only a full
// cap refuses a newcomer; the reasons are the labels of meshdns_upstream_overload_total.
func TestSharesFailFlooderFirst(t *testing.T) {
	steps := []struct {
		name string
		give bool
		src  Source
		n    int // takes (or gives) in a row
		want overloadReason
	}{
		{name: "alone: half the slots", src: flooder, n: 4},
		{name: "alone: no more than half", src: flooder, n: 1, want: overloadSource},
		{name: "newcomer admitted", src: neighbor, n: 1},
		{name: "two sources: the flooder refused", src: flooder, n: 1, want: overloadSource},
		{name: "two sources: a third each", src: neighbor, n: 1},
		{name: "two sources: no more than a third", src: neighbor, n: 1, want: overloadSource},
		{name: "a third source", src: third, n: 1},
		{name: "IPv4 spelling counts with the IPv4-mapped one", src: AddrSource(netip.MustParseAddr("127.0.0.4")), n: 1},
		{name: "cap full: newcomer refused", src: AddrSource(netip.MustParseAddr("127.0.0.5")), n: 1, want: overloadTotal},
		{name: "flooder's exchanges end", give: true, src: flooder, n: 4},
		{name: "a newcomer takes a freed slot", src: Source{}, n: 1},
	}
	s := fairshare.New[Source](8)
	for _, step := range steps {
		for i := range step.n {
			if step.give {
				s.Release(step.src)
				continue
			}
			if got := overloadOf(s.Acquire(step.src)); got != step.want {
				t.Fatalf("%s: take %d for %v = %q, want %q", step.name, i+1, step.src, got, step.want)
			}
		}
	}
	want := map[Source]int{neighbor: 2, third: 2, {}: 1}
	for src, n := range want {
		if got := s.Held(src); got != n {
			t.Errorf("%v holds %d, want %d", src, got, n)
		}
	}
	if s.Keys() != len(want) || s.Total() != 5 {
		t.Errorf("%d sources hold %d, want %v total 5", s.Keys(), s.Total(), want)
	}
	for src, n := range want {
		for range n {
			s.Release(src)
		}
	}
	if s.Total() != 0 || s.Keys() != 0 {
		t.Errorf("after every exchange ended: %d sources hold %d, want none", s.Keys(), s.Total())
	}
}

// TestOverloadBySource holds the flooder's share (2 of 4 slots) with questions a silent
// upstream never answers: the flooder's next question is refused at once, counted under
// reason="source" and named in the error, while the neighbour's question still goes out.
func TestOverloadBySource(t *testing.T) {
	fake := startFake(t, func(string, *dns.Msg) []packet { return nil }) // counts, never answers
	m := NewMetrics(prometheus.NewRegistry())
	f := newForwarder(t, []netip.AddrPort{fake.addr}, Options{TryTimeout: hangGuard, Deadline: hangGuard,
		MaxOutstanding: 4, Metrics: m}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan error, 3)
	ask := func(qname string, src Source) {
		go func() {
			_, err := f.Forward(ctx, newRequest(qname, dns.TypeA), Via{Source: src})
			held <- err
		}()
	}
	ask("f1.test.", flooder)
	ask("f2.test.", flooder)
	waitFor(t, "the flooder's share upstream", func() bool { return len(fake.Queries()) == 2 })

	_, err := f.Forward(ctx, newRequest("f3.test.", dns.TypeA), Via{Source: flooder})
	if !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "127.0.0.2") {
		t.Errorf("flooder's third question: %v, want ErrOverloaded naming 127.0.0.2", err)
	}
	ask("n1.test.", neighbor)
	waitFor(t, "the neighbour's question upstream", func() bool { return len(fake.Queries()) == 3 })
	for reason, want := range map[string]float64{"source": 1, "total": 0} {
		if n := promtest.ToFloat64(m.overloads.WithLabelValues(reason)); n != want {
			t.Errorf("overload_total{reason=%q} = %v, want %v", reason, n, want)
		}
	}
	cancel()
	for range 3 {
		if err := <-held; !errors.Is(err, context.Canceled) {
			t.Errorf("held question: %v, want context.Canceled", err)
		}
	}
}
