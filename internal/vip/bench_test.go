package vip

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
)

const benchKeys = 60000 // 92% of a /16

func benchClaims(n int, prefix string) []Claim {
	cs := make([]Claim, n)
	for i := range cs {
		cs[i] = Claim{
			Key:     Key{Namespace: fmt.Sprintf("ns%d", i%50), Host: fmt.Sprintf("%s%d.example.com", prefix, i)},
			Created: t0.Add(time.Duration(i) * time.Second),
		}
	}
	return cs
}

func benchAllocator(b *testing.B, clk *testutil.Clock) *Allocator {
	a, err := New(Options{V4: defaultV4, V6: defaultV6, Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkAllocate(b *testing.B) {
	base := benchClaims(benchKeys, "h")
	// churned renames 1% of the keys, spread over the set.
	churned := append([]Claim(nil), base...)
	for i := 0; i < len(churned); i += 100 {
		churned[i].Key.Host = "renamed-" + churned[i].Key.Host
	}

	b.Run("60000 keys into a /16 from empty", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a := benchAllocator(b, testutil.NewClock())
			if as, _ := a.Allocate(base); len(as) != benchKeys {
				b.Fatalf("%d keys hold addresses", len(as))
			}
		}
	})
	b.Run("60000 keys unchanged", func(b *testing.B) {
		a := benchAllocator(b, testutil.NewClock())
		a.Allocate(base)
		b.ReportAllocs()
		for b.Loop() {
			if _, changed := a.Allocate(base); changed {
				b.Fatal("changed")
			}
		}
	})
	b.Run("60000 keys after 1% churn", func(b *testing.B) {
		clk := testutil.NewClock()
		a := benchAllocator(b, clk)
		a.Allocate(base)
		sets := [2][]Claim{churned, base}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			// Past the quarantine, so the pool never fills with the churn of earlier rounds.
			clk.Advance(DefaultQuarantine + time.Minute)
			if _, changed := a.Allocate(sets[i%2]); !changed {
				b.Fatal("no change")
			}
			i++
		}
	})
}

// BenchmarkState measures what persisting costs at 60,000 keys: State and its JSON.
func BenchmarkState(b *testing.B) {
	a := benchAllocator(b, testutil.NewClock())
	a.Allocate(benchClaims(benchKeys, "h"))
	b.ReportAllocs()
	for b.Loop() {
		data, err := json.MarshalIndent(a.State(), "", "  ")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(data)), "bytes")
	}
}
