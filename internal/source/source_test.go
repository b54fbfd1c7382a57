package source_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/source"
)

type fixed struct {
	snap    model.Snapshot
	changed chan struct{}
}

func (f *fixed) Snapshot() model.Snapshot { return f.snap }
func (f *fixed) Changed() <-chan struct{} { return f.changed }

func TestMerge(t *testing.T) {
	a := &fixed{snap: model.Snapshot{Services: []model.Service{{Meta: model.Meta{Name: "a"}}}}, changed: make(chan struct{}, 1)}
	b := &fixed{snap: model.Snapshot{Services: []model.Service{{Meta: model.Meta{Name: "b"}}},
		Namespaces: []model.Namespace{{Name: "ns"}}}, changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := source.Merge(ctx, a, b)
	snap := m.Snapshot()
	if len(snap.Services) != 2 || snap.Services[0].Name != "a" || snap.Services[1].Name != "b" || len(snap.Namespaces) != 1 {
		t.Errorf("merged snapshot %+v, want a's then b's objects", snap)
	}
	for _, src := range []*fixed{a, b} {
		src.changed <- struct{}{}
		select {
		case <-m.Changed():
		case <-time.After(5 * time.Second):
			t.Fatal("a change of one source was not signalled")
		}
	}
	if one := source.Merge(ctx, a); one != source.Source(a) {
		t.Error("Merge of one source should be that source")
	}
}

// syncing is a source whose content is incomplete until synced is closed (an API server that
// has not answered its first lists); a nil synced never closes.
type syncing struct {
	fixed
	synced chan struct{}
}

func (s *syncing) WaitSynced(ctx context.Context) bool {
	select {
	case <-s.synced:
		return true
	case <-ctx.Done():
		return false
	}
}

// TestMergeLeavesOutUnsyncedSource: a source that has not synced adds nothing to the merged
// snapshot and keeps it not ready, while the ready sources' content is there; once it syncs,
// a change is signalled and its content joins.
func TestMergeLeavesOutUnsyncedSource(t *testing.T) {
	registry := &fixed{snap: model.Snapshot{Services: []model.Service{{Meta: model.Meta{Name: "registry"}}}}, changed: make(chan struct{}, 1)}
	api := &syncing{fixed: fixed{snap: model.Snapshot{Services: []model.Service{{Meta: model.Meta{Name: "half-listed"}}}},
		changed: make(chan struct{}, 1)}, synced: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := source.Merge(ctx, registry, api)
	if snap := m.Snapshot(); len(snap.Services) != 1 || snap.Services[0].Name != "registry" || source.Ready(m) {
		t.Fatalf("before the API source syncs: snapshot %+v, ready %v; want the registry's content only, not ready",
			snap.Services, source.Ready(m))
	}
	close(api.synced)
	select {
	case <-m.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("the API source's sync was not signalled")
	}
	if snap := m.Snapshot(); len(snap.Services) != 2 || !source.Ready(m) {
		t.Errorf("after the sync: snapshot %+v, ready %v; want both sources' content, ready", snap.Services, source.Ready(m))
	}
	never := &syncing{fixed: fixed{changed: make(chan struct{}, 1)}}
	if alone := source.Merge(ctx, never); alone == source.Source(never) || source.Ready(alone) {
		t.Error("a lone source that never syncs must be wrapped, and not ready")
	}
	if !source.Ready(registry) {
		t.Error("a source that does not sync is ready once started")
	}
}
