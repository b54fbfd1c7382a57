package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait of these tests: it guards against hangs, it measures nothing.
const waitFor = 10 * time.Second

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: waitFor}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// start runs a server on loopback until the test ends.
func start(t *testing.T, o Options) *Server {
	t.Helper()
	o.Addr = "127.0.0.1:0"
	if o.Gatherer == nil {
		o.Gatherer = prometheus.NewRegistry()
	}
	if o.Ready == nil {
		o.Ready = func() bool { return true }
	}
	s := New(o)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

// staticTable is a table of generation 1 whose views are the given JSON lists.
func staticTable(client, all string) func() TableDump {
	return func() TableDump {
		return TableDump{Generation: 1, Write: func(w io.Writer, everything bool) error {
			if everything {
				_, err := io.WriteString(w, all)
				return err
			}
			_, err := io.WriteString(w, client)
			return err
		}}
	}
}

func TestEndpoints(t *testing.T) {
	var ready atomic.Bool
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "meshdns_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	s := start(t, Options{Gatherer: reg, Ready: ready.Load,
		Table: staticTable(`[{"name": "x.ns.svc.cluster.local."}]`, "[]")})
	base := "http://" + s.Addr()
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "no name table") {
		t.Errorf("/readyz before the first table = %d %q", code, body)
	}
	ready.Store(true)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d", code)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "meshdns_test_total 3") {
		t.Errorf("/metrics lacks the registered counter:\n%s", body)
	}
	_, body := get(t, base+"/debug/table")
	var got []map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil || got[0]["name"] != "x.ns.svc.cluster.local." {
		t.Errorf("/debug/table = %q (%v)", body, err)
	}
}

// TestDebugTableView: /debug/table shows the client's view and says so; ?all=1 shows every
// name and says so.
func TestDebugTableView(t *testing.T) {
	s := start(t, Options{ClientView: "namespace prod", Table: staticTable(`["client"]`, `["all"]`)})
	for _, tc := range []struct{ query, view, body string }{
		{"", "namespace prod", `["client"]`},
		{"?all=1", "all", `["all"]`},
		{"?all=true", "all", `["all"]`},
		{"?all=0", "namespace prod", `["client"]`},
	} {
		resp, err := http.Get("http://" + s.Addr() + "/debug/table" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get(ViewHeader); got != tc.view || string(body) != tc.body {
			t.Errorf("/debug/table%s: %s %q, body %s; want %q, %s", tc.query, ViewHeader, got, body, tc.view, tc.body)
		}
	}
}

// TestDebugTableRenderedOncePerGeneration: requests of one table generation share one
// rendering of each view; a new generation is rendered again.
func TestDebugTableRenderedOncePerGeneration(t *testing.T) {
	var gen atomic.Uint64
	gen.Store(1)
	var renders atomic.Int32
	table := func() TableDump {
		return TableDump{Generation: gen.Load(), Write: func(w io.Writer, all bool) error {
			renders.Add(1)
			_, err := io.WriteString(w, "[]\n")
			return err
		}}
	}
	s := start(t, Options{Table: table})
	for range 5 {
		get(t, "http://"+s.Addr()+"/debug/table")
		get(t, "http://"+s.Addr()+"/debug/table?all=1")
	}
	if n := renders.Load(); n != 2 {
		t.Errorf("%d renderings for one generation and two views, want 2", n)
	}
	gen.Store(2)
	get(t, "http://"+s.Addr()+"/debug/table")
	if n := renders.Load(); n != 3 {
		t.Errorf("%d renderings after a new generation, want 3", n)
	}
}

// blockingTable is a table whose rendering waits for release; entered receives once per
// rendering started.
func blockingTable() (table func() TableDump, entered, release chan struct{}) {
	entered, release = make(chan struct{}, 100), make(chan struct{})
	table = func() TableDump {
		return TableDump{Generation: 1, Write: func(w io.Writer, _ bool) error {
			entered <- struct{}{}
			<-release
			_, err := io.WriteString(w, "[]\n")
			return err
		}}
	}
	return table, entered, release
}

// waitGauge waits until g reads want.
func waitGauge(t *testing.T, g prometheus.Gauge, want float64) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); testutil.ToFloat64(g) != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gauge = %v, want %v", testutil.ToFloat64(g), want)
		}
	}
}

// TestAdminRequestsBounded: with MaxRequests expensive requests in flight, more are answered
// 503 with Retry-After at once and counted, while /healthz still answers; those in flight
// complete.
func TestAdminRequestsBounded(t *testing.T) {
	table, entered, release := blockingTable()
	m := NewMetrics(prometheus.NewRegistry())
	s := start(t, Options{Table: table, Metrics: m, Limits: Limits{MaxRequests: 2}})
	url := "http://" + s.Addr() + "/debug/table"
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Go(func() {
			resp, err := (&http.Client{Timeout: waitFor}).Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	<-entered
	waitGauge(t, m.inFlight, 2)
	const more = 8
	for range more {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("request over the cap: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if code, _ := get(t, "http://"+s.Addr()+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with the requests at the cap = %d", code)
	}
	if n := testutil.ToFloat64(m.rejected); n != more {
		t.Errorf("meshdns_admin_requests_rejected_total = %v, want %d", n, more)
	}
	close(release)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Errorf("request in flight ended %d, want 200", code)
		}
	}
}

// rawRequest sends GET path on c and reads the reply's status line and body.
func rawRequest(t *testing.T, c net.Conn, r *bufio.Reader, path string) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: admin\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// closedByServer waits until the server closes c: a read ends with EOF or a reset, not with
// the test's own deadline.
func closedByServer(c net.Conn, r io.Reader) bool {
	c.SetReadDeadline(time.Now().Add(waitFor))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestIdleConnectionsClosed: a keep-alive connection is closed after the idle timeout, and
// one that never sends a request after the header timeout.
func TestIdleConnectionsClosed(t *testing.T) {
	s := start(t, Options{Limits: Limits{IdleTimeout: 100 * time.Millisecond, ReadHeaderTimeout: 100 * time.Millisecond}})
	idle, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	r := bufio.NewReader(idle)
	if code := rawRequest(t, idle, r, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	if !closedByServer(idle, r) {
		t.Error("an idle keep-alive connection stayed open")
	}
	silent, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if !closedByServer(silent, silent) {
		t.Error("a connection that sends nothing stayed open")
	}
}

// TestConnectionCap: past MaxConns, a new connection evicts the one idle the longest, so
// /healthz still answers with twice the cap held; when every connection is busy, the new one
// is closed. Each is counted.
func TestConnectionCap(t *testing.T) {
	table, entered, release := blockingTable()
	m := NewMetrics(prometheus.NewRegistry())
	const max = 4
	s := start(t, Options{Table: table, Metrics: m, Limits: Limits{MaxConns: max, MaxRequests: max}})
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 2 * max {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if code, _ := get(t, "http://"+s.Addr()+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with %d connections held = %d", 2*max, code)
	}
	if n := testutil.ToFloat64(m.evicted); n < max+1 {
		t.Errorf("%v idle connections evicted, want at least %d", n, max+1)
	}
	if n := testutil.ToFloat64(m.open); n > max {
		t.Errorf("%v connections open, want at most %d", n, max)
	}
	// Start the second part empty: with connections left idle, one of the requests' own
	// connections, accepted but not yet read, could be the one a later one evicts.
	for _, c := range held {
		c.Close()
	}
	held = nil
	http.DefaultTransport.(*http.Transport).CloseIdleConnections() // get's /healthz connection
	waitGauge(t, m.open, 0)
	// Every slot busy with a request in flight: a new connection is refused. The requests
	// get a transport of their own, with no pooled connection to reuse.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	for range max {
		wg.Go(func() {
			if resp, err := (&http.Client{Transport: tr, Timeout: waitFor}).Get("http://" + s.Addr() + "/debug/table"); err == nil {
				resp.Body.Close()
			}
		})
	}
	<-entered
	waitGauge(t, m.inFlight, max)
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !closedByServer(c, c) {
		t.Error("a connection over the cap of busy connections stayed open")
	}
	if n := testutil.ToFloat64(m.refused); n != 1 {
		t.Errorf("%v connections refused, want 1", n)
	}
}

func TestStartError(t *testing.T) {
	s := New(Options{Addr: "256.0.0.1:1"})
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "admin listen") {
		t.Errorf("Start = %v", err)
	}
}

// TestReadyzShowsDetails: /readyz adds the details (a VIP state that cannot be saved) to its
// answer, ready or not, without changing its status.
func TestReadyzShowsDetails(t *testing.T) {
	var ready atomic.Bool
	detail := "VIP state /var/lib/meshdns/vips.json not saved since 2026-01-02T03:04:05Z: no space left on device"
	s := New(Options{Addr: "127.0.0.1:0", Gatherer: prometheus.NewRegistry(), Ready: ready.Load,
		Details: func() []string { return []string{detail} }})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	base := "http://" + s.Addr()
	if code, body := get(t, base+"/readyz"); code != 503 || body != "not ready: no name table built from every source yet\n"+detail+"\n" {
		t.Errorf("/readyz before the first table = %d %q, want 503 and the detail", code, body)
	}
	ready.Store(true)
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ok\n"+detail+"\n" {
		t.Errorf("/readyz when ready = %d %q, want 200 and the detail", code, body)
	}
}
