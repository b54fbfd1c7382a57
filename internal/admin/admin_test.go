package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	var ready atomic.Bool
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "meshdns_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	s := New(Options{Addr: "127.0.0.1:0", Gatherer: reg, Ready: ready.Load,
		Table: func() any { return []map[string]string{{"name": "x.ns.svc.cluster.local."}} }})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
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
	if code, body := get(t, base+"/readyz"); code != 503 || body != "not ready: no name table yet\n"+detail+"\n" {
		t.Errorf("/readyz before the first table = %d %q, want 503 and the detail", code, body)
	}
	ready.Store(true)
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ok\n"+detail+"\n" {
		t.Errorf("/readyz when ready = %d %q, want 200 and the detail", code, body)
	}
}
