package inject

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/internal/testutil"
)

// TestMetricNames lints the injector's metrics: names, units and help are a contract with
// dashboards and alerts.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	NewMetrics(reg)
	if mfs := testutil.LintMetrics(t, reg); len(mfs) != 2 {
		t.Errorf("%d metric families, want 2", len(mfs))
	}
}
