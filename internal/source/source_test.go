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
