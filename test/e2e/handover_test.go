package e2e

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
)

const (
	// loopInterval paces the query loop: 200 queries a second.
	loopInterval = 5 * time.Millisecond
	// loopTimeout is how long one query of the loop waits for its answer; it is not retried.
	loopTimeout = 2 * time.Second
	// handovers is how many times a new meshdns replaces the serving one.
	handovers = 10
	// answersPerServer is how many answers the loop gets from each meshdns before it is
	// replaced, and how many queries it sends once nothing serves any more.
	answersPerServer = 40
)

// servingLine and joiningLine are what meshdns logs once its DNS listeners are bound, and when
// it finds them held and waits for its table first.
const (
	servingLine = "meshdns serving"
	joiningLine = "joining them once the name table is ready"
)

// loopName and loopAnswer are what the loop asks and must be told.
const (
	loopName   = "productpage.bookinfo.svc.cluster.local."
	loopAnswer = "10.96.10.10"
)

// startLoop asks loopName at addr over UDP every loopInterval, each query from a fresh socket
// (so the kernel spreads them over every socket bound to the port) with loopTimeout and no
// retry.
func startLoop(addr string) *testutil.QueryLoop {
	return testutil.StartQueryLoop(loopInterval, 1, func(int, int) (string, string) { return askOnce(addr) })
}

// askOnce sends one query and classifies the outcome: "" when answered right.
func askOnce(addr string) (kind, detail string) {
	m := new(dns.Msg)
	m.SetQuestion(loopName, dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: loopTimeout}
	resp, _, err := c.Exchange(m, addr)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout", err.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused", err.Error()
	case err != nil:
		return "error", err.Error()
	case resp.Rcode != dns.RcodeSuccess:
		return dns.RcodeToString[resp.Rcode], resp.String()
	case len(resp.Answer) != 1 || !strings.HasSuffix(resp.Answer[0].String(), "\t"+loopAnswer):
		return "wrong answer", resp.String()
	}
	return "", ""
}

// waitLoop polls until the loop's counts satisfy cond; the bound is a limit, not a timing
// assertion.
func waitLoop(t *testing.T, l *testutil.QueryLoop, what string, cond func(sent, answered, failed int) bool) {
	t.Helper()
	eventually(t, 30*time.Second, what, func() string {
		if cond(l.Counts()) {
			return ""
		}
		return l.String()
	})
}

// chaosID asks id.server (CHAOS TXT) over network: which meshdns answers (--chaos-id).
func chaosID(network, addr string) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion("id.server.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	c := &dns.Client{Net: network, Timeout: loopTimeout}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		return "", err
	}
	if len(resp.Answer) != 1 {
		return "", fmt.Errorf("id.server: %s", resp)
	}
	return strings.Join(resp.Answer[0].(*dns.TXT).Txt, ""), nil
}

// heldUpstream is an upstream DNS server that answers only when the test lets it: a query
// it holds keeps meshdns busy with it (in flight) for as long as the test wants.
type heldUpstream struct {
	addr     string
	received chan string // the name of each query, as it arrives
	mu       sync.Mutex
	release  chan struct{} // closed: answer
}

func startHeldUpstream(t *testing.T) *heldUpstream {
	t.Helper()
	pc, ln, err := testutil.ListenBoth() // meshdns forwards a query that came over TCP over TCP
	if err != nil {
		t.Fatal(err)
	}
	u := &heldUpstream{addr: pc.LocalAddr().String(), received: make(chan string, 16), release: make(chan struct{})}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		u.mu.Lock()
		release := u.release
		u.mu.Unlock()
		u.received <- req.Question[0].Name
		<-release
		m := new(dns.Msg)
		m.SetReply(req)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA,
			Class: dns.ClassINET, Ttl: 30}, A: net.IPv4(192, 0, 2, 1)}}
		w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	t.Cleanup(u.letGo) // first: a held handler would keep Shutdown waiting
	return u
}

// letGo answers the queries held, and holds the next ones again.
func (u *heldUpstream) letGo() {
	u.mu.Lock()
	defer u.mu.Unlock()
	close(u.release)
	u.release = make(chan struct{})
}

// inFlight makes the meshdns serving alone on addr busy with a query to upstream: it opens a
// TCP connection now (only that meshdns can accept it) and, when ask is called, sends name over
// it and returns once upstream holds it; answer then reads the reply.
func inFlight(t *testing.T, addr string, u *heldUpstream) (ask func(name string), answer func() (*dns.Msg, error)) {
	t.Helper()
	conn, err := dns.DialTimeout("tcp", addr, loopTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ask = func(name string) {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		if err := conn.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-u.received:
			if got != name {
				t.Fatalf("upstream asked %q, want %q", got, name)
			}
		case <-time.After(readyTimeout):
			t.Fatalf("%s did not reach upstream within %s", name, readyTimeout)
		}
	}
	answer = func() (*dns.Msg, error) {
		conn.SetReadDeadline(time.Now().Add(readyTimeout))
		return conn.ReadMsg()
	}
	return ask, answer
}

// TestUpgradeLosesNoQuery: while a client asks 200 times a second, a new meshdns (same
// --listen and --admin, --reuse-port) replaces the serving one ten times: start the new one,
// wait until it serves, SIGTERM the old one while it waits for upstream on a query. Not one
// query may time out, fail or get a wrong answer, the one in flight included. (A meshdns that
// stopped reading at SIGTERM but kept its sockets until its query in flight is answered, as
// meshdns did before, loses the queries the kernel gives those sockets meanwhile.) Then the
// last one is stopped with no successor, and the queries sent after it exited must all fail:
// the loop notices when nothing answers.
func TestUpgradeLosesNoQuery(t *testing.T) {
	dnsAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	adminAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	upstream := startHeldUpstream(t)
	start := func(gen int) *server {
		args := append(examplesArgs(examplePath("registry"), upstream.addr), "--chaos-id", fmt.Sprintf("generation-%d", gen))
		return startServer(t, serveOptions{args: args, listen: dnsAddr, admin: adminAddr, reusePort: true, logLine: servingLine})
	}
	old := start(0)
	loop := startLoop(dnsAddr)
	for gen := 1; gen <= handovers; gen++ {
		_, before, _ := loop.Counts()
		waitLoop(t, loop, fmt.Sprintf("answers from generation %d", gen-1), func(_, answered, _ int) bool {
			return answered >= before+answersPerServer
		})
		ask, answer := inFlight(t, dnsAddr, upstream)
		next := start(gen)
		slow := fmt.Sprintf("slow-%d.example.", gen)
		ask(slow)
		stopped := make(chan error, 1)
		go func() {
			if code, err := old.stop(syscall.SIGTERM); err != nil || code != 0 {
				stopped <- fmt.Errorf("exit status %d (%v), want 0", code, err)
			}
			close(stopped)
		}()
		_, before, _ = loop.Counts()
		waitLoop(t, loop, fmt.Sprintf("answers while generation %d stops", gen-1), func(_, answered, _ int) bool {
			return answered >= before+answersPerServer
		})
		upstream.letGo()
		if resp, err := answer(); err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
			t.Errorf("%s, in flight at SIGTERM: %v %v", slow, resp, err)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("generation %d after SIGTERM: %v\n%s", gen-1, err, old.stderr)
		}
		want := fmt.Sprintf("generation-%d", gen)
		for _, network := range []string{"udp", "tcp"} {
			if id, err := chaosID(network, dnsAddr); err != nil || id != want {
				t.Fatalf("after hand-over %d, id.server over %s: %q (%v), want %q", gen, network, id, err, want)
			}
		}
		old = next
	}
	loop.Halt()
	if sent, answered, failed := loop.Counts(); failed > 0 || answered != sent {
		t.Errorf("queries lost or failed during %d upgrades: %s", handovers, loop)
	} else {
		t.Logf("%d upgrades: %s", handovers, loop)
	}

	// No successor: SIGTERM leaves the port to nobody, and the loop must see it.
	loop = startLoop(dnsAddr)
	waitLoop(t, loop, "answers before the last stop", func(_, answered, _ int) bool { return answered >= answersPerServer })
	if code, err := old.stop(syscall.SIGTERM); err != nil || code != 0 {
		t.Fatalf("last generation after SIGTERM: exit status %d (%v), want 0", code, err)
	}
	sentAtExit, _, _ := loop.Counts()
	waitLoop(t, loop, "queries after the last stop", func(sent, _, _ int) bool { return sent >= sentAtExit+answersPerServer })
	loop.Halt()
	sent, _, failed := loop.Counts()
	if failed < sent-sentAtExit {
		t.Errorf("%d queries sent after meshdns exited with no successor, only %d failed: %s", sent-sentAtExit, failed, loop)
	} else {
		t.Logf("no successor: %s", loop)
	}
}

// TestJoinWaitsForTable: a meshdns that finds its addresses held binds none of them until its
// table is ready. Here it never is (an API server that does not answer), so every query keeps
// going to the meshdns that serves, and the waiting one still stops cleanly on SIGTERM.
func TestJoinWaitsForTable(t *testing.T) {
	dnsAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	adminAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	serving := append(examplesArgs(examplePath("registry"), ""), "--chaos-id", "serving")
	startServer(t, serveOptions{args: serving, listen: dnsAddr, admin: adminAddr, reusePort: true, logLine: servingLine})
	waiting := append(examplesArgs(examplePath("registry"), ""), "--chaos-id", "waiting", "--kubeconfig", unreachableKubeconfig(t))
	w := startServer(t, serveOptions{args: waiting, listen: dnsAddr, admin: adminAddr, reusePort: true, logLine: joiningLine})
	// Each query from a fresh socket: were the waiting one bound, the kernel would give it
	// about half of them.
	for i := range 50 {
		network := []string{"udp", "tcp"}[i%2]
		if id, err := chaosID(network, dnsAddr); err != nil || id != "serving" {
			t.Fatalf("query %d over %s answered by %q (%v), want the serving meshdns", i, network, id, err)
		}
	}
	if code, err := w.stop(syscall.SIGTERM); err != nil || code != 0 {
		t.Errorf("waiting meshdns after SIGTERM: exit status %d (%v), want 0", code, err)
	}
	if strings.Contains(w.stderr.String(), servingLine) {
		t.Errorf("the waiting meshdns served:\n%s", w.stderr)
	}
}
