package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/admin"
	"github.com/meshdns/meshdns/internal/config"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
)

// adminWithTable serves the admin endpoints of a resolver holding the table of snap.
func adminWithTable(t *testing.T, snap model.Snapshot, namespace string) string {
	t.Helper()
	tbl, err := table.Build(snap, table.Options{Zone: "cluster.local", TTL: 30 * time.Second, Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	res := resolver.New(resolver.Options{Zone: "cluster.local"})
	res.SetTable(tbl)
	cfg := config.Settings{Admin: netip.MustParseAddrPort("127.0.0.1:0")}
	adm, err := startAdmin(cfg, prometheus.NewRegistry(), res, namespace, nil, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adm.Shutdown(t.Context()) })
	return "http://" + adm.Addr()
}

// TestDebugTableAllocationsPerRequest: on a 5,000-service table, a /debug/table request
// allocates far less than the rendering it sends (one rendering per table generation, copied
// to each request), where every request used to build and encode the whole table again
// (about 17 MB each).
func TestDebugTableAllocationsPerRequest(t *testing.T) {
	url := adminWithTable(t, testutil.ServicesSnapshot(5000), "") + "/debug/table"
	fetch := func() int64 {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("/debug/table: %d, %v", resp.StatusCode, err)
		}
		return n
	}
	size := fetch() // renders this generation
	const requests = 10
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range requests {
		fetch()
	}
	runtime.ReadMemStats(&after)
	perRequest := (after.TotalAlloc - before.TotalAlloc) / requests
	t.Logf("/debug/table: %d bytes sent, %d bytes allocated per request", size, perRequest)
	if limit := uint64(size) / 8; perRequest > limit {
		t.Errorf("a /debug/table request allocates %d bytes, want at most %d (1/8 of the %d-byte rendering)", perRequest, limit, size)
	}
}

// TestAdminConnectionCapBelowFileLimit: the admin connection cap stays a small share of the
// descriptor limit, so DNS keeps the rest.
func TestAdminConnectionCapBelowFileLimit(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{
		{1 << 20, admin.DefaultMaxConns},
		{4096, admin.DefaultMaxConns},
		{512, 32},
		{32, 4},
		{0, admin.DefaultMaxConns}, // unknown
	} {
		if got := adminLimits(tc.nofile, slog.New(slog.DiscardHandler)).MaxConns; got != tc.want {
			t.Errorf("nofile %d: admin connection cap %d, want %d", tc.nofile, got, tc.want)
		}
	}
}
