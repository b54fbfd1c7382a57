package upstream

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    Policy
		wantErr bool
	}{
		{in: "sequential", want: Sequential},
		{in: "random", want: Random},
		{in: "parallel", want: Parallel},
		{in: "Parallel", wantErr: true},
		{in: "", wantErr: true},
		{in: "round-robin", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePolicy(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParsePolicy(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
			if err == nil && got.String() != tc.in {
				t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
			}
		})
	}
}

// arrivals starts n fakes that all answer SERVFAIL, so that every one is asked, and returns
// them with a func giving the indexes of the fakes in the order queries reached them.
func arrivals(t *testing.T, n int) ([]netip.AddrPort, func() []int) {
	var mu sync.Mutex
	var order []int
	servers := make([]netip.AddrPort, n)
	for i := range servers {
		servers[i] = startFake(t, func(_ string, q *dns.Msg) []packet {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			return []packet{{msg: replyA(q, dns.RcodeServerFailure, "")}}
		}).addr
	}
	return servers, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(order)
	}
}

func TestPolicyOrder(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		start  int // what the injected randomness draws
		want   []int
	}{
		{name: "sequential ignores randomness", policy: Sequential, start: 2, want: []int{0, 1, 2, 3}},
		{name: "random drawing the first", policy: Random, start: 0, want: []int{0, 1, 2, 3}},
		{name: "random drawing the third", policy: Random, start: 2, want: []int{2, 3, 0, 1}},
		{name: "random drawing the last", policy: Random, start: 3, want: []int{3, 0, 1, 2}},
	}
	for _, tc := range tests {
		for _, network := range networks {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				servers, order := arrivals(t, 4)
				opts := fastOpts
				opts.Policy, opts.FailThreshold = tc.policy, 100
				f := newForwarder(t, servers, opts, 0)
				f.randIntN = func(int) int { return tc.start }
				resp, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{TCP: network == "tcp"})
				if err != nil || resp.Rcode != dns.RcodeServerFailure {
					t.Fatalf("Forward = %v, %v; want the last SERVFAIL", resp, err)
				}
				if got := order(); !slices.Equal(got, tc.want) {
					t.Errorf("servers asked in order %v, want %v", got, tc.want)
				}
			})
		}
	}
}

// TestRandomSpreads checks that the Random policy spreads first tries evenly, with seeded
// randomness so that the test cannot flake.
func TestRandomSpreads(t *testing.T) {
	const servers, queries = 4, 400
	fakes := make([]*fakeServer, servers)
	addrs := make([]netip.AddrPort, servers)
	for i := range fakes {
		fakes[i] = startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.1"))
		addrs[i] = fakes[i].addr
	}
	f := newForwarder(t, addrs, Options{Policy: Random}, 0)
	f.randIntN = rand.New(rand.NewPCG(1, 2)).IntN
	for range queries {
		if _, err := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{}); err != nil {
			t.Fatalf("Forward: %v", err)
		}
	}
	for i, fake := range fakes {
		// Expected 100 each; the bounds are far outside what a fair draw produces.
		if n := len(fake.Queries()); n < queries/servers/2 || n > queries/servers*3/2 {
			t.Errorf("server %d got %d of %d first tries, want about %d", i, n, queries, queries/servers)
		}
	}
}

func TestParallel(t *testing.T) {
	silent := silentServer(t)
	good := startFake(t, answerWith(dns.RcodeSuccess, "192.0.2.99")).addr
	servfail := startFake(t, answerWith(dns.RcodeServerFailure, "")).addr
	refused := startFake(t, answerWith(dns.RcodeRefused, "")).addr
	closed := closedPort(t)
	// slowGood answers only after the SERVFAIL server has, so a SERVFAIL arrives first.
	servfailed := make(chan struct{})
	var once sync.Once
	servfailFirst := startFake(t, func(_ string, q *dns.Msg) []packet {
		defer once.Do(func() { close(servfailed) })
		return []packet{{msg: replyA(q, dns.RcodeServerFailure, "")}}
	}).addr
	slowGood := startFake(t, func(_ string, q *dns.Msg) []packet {
		<-servfailed
		time.Sleep(20 * time.Millisecond) // let the SERVFAIL reach the forwarder first
		return []packet{{msg: replyA(q, dns.RcodeSuccess, "192.0.2.99")}}
	}).addr
	t.Cleanup(func() { once.Do(func() { close(servfailed) }) }) // unblock slowGood if never asked
	tests := []struct {
		name    string
		servers []netip.AddrPort
		rcodes  []int // any of these
		answer  []string
	}{
		{name: "silent first server does not delay the answer", servers: []netip.AddrPort{silent, good},
			rcodes: []int{dns.RcodeSuccess}, answer: []string{"a.test. 60 in a 192.0.2.99"}},
		{name: "closed port and a good server", servers: []netip.AddrPort{closed, good},
			rcodes: []int{dns.RcodeSuccess}, answer: []string{"a.test. 60 in a 192.0.2.99"}},
		{name: "SERVFAIL does not win over a later answer", servers: []netip.AddrPort{servfailFirst, slowGood},
			rcodes: []int{dns.RcodeSuccess}, answer: []string{"a.test. 60 in a 192.0.2.99"}},
		{name: "all fail with rcodes: a failed reply", servers: []netip.AddrPort{servfail, refused},
			rcodes: []int{dns.RcodeServerFailure, dns.RcodeRefused}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry())
			// Tries that would take 30s: only a parallel race returns within the hang guard.
			opts := Options{Policy: Parallel, TryTimeout: 30 * time.Second, Deadline: time.Minute, Metrics: m}
			f := newForwarder(t, tc.servers, opts, 0)
			req := newRequest("a.test.", dns.TypeA)
			resp, err := forwardWithin(t, context.Background(), f, req, false)
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			checkReply(t, req, resp)
			if !slices.Contains(tc.rcodes, resp.Rcode) {
				t.Errorf("rcode %s, want one of %v", dns.RcodeToString[resp.Rcode], tc.rcodes)
			}
			if got := rrStrings(resp.Answer); !slices.Equal(got, tc.answer) {
				t.Errorf("answer %q, want %q", got, tc.answer)
			}
			// The losers' tries were cancelled, which says nothing about those servers.
			if n := testutil.ToFloat64(m.failures.WithLabelValues(silent.String(), "timeout")); n != 0 {
				t.Errorf("cancelled try counted as %v timeouts", n)
			}
		})
	}
}
