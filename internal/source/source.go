// Package source defines what the table builder reads: a snapshot of model records and a
// signal when it changes. The file (manifest directory) and kube (API server) packages
// implement it; Merge combines them.
//
// A source whose first content arrives after it starts (the API server's first lists) is a
// Syncer. Until it has synced, Merge leaves its partial content out and reports not Ready: the
// builder then publishes a partial table from the sources that are ready.
package source

import (
	"context"
	"sync/atomic"

	"github.com/meshdns/meshdns/internal/model"
)

// Source is a producer of model records.
type Source interface {
	// Snapshot returns everything the source knows now; the caller must not modify it.
	Snapshot() model.Snapshot
	// Changed receives a value after the snapshot has changed.
	Changed() <-chan struct{}
}

// Syncer is a source whose snapshot is incomplete until WaitSynced returns true; it returns
// false when ctx ends first.
type Syncer interface {
	WaitSynced(ctx context.Context) bool
}

// Ready reports whether s has its first complete content: a source made by Merge once every
// source in it has; another source unless it is a Syncer (wrap that one in Merge).
func Ready(s Source) bool {
	if r, ok := s.(interface{ Ready() bool }); ok {
		return r.Ready()
	}
	_, syncs := s.(Syncer)
	return !syncs
}

// Merge returns a Source whose snapshot is the union of srcs that are ready, in order, and
// which signals when any of them changes or becomes ready, until ctx ends.
func Merge(ctx context.Context, srcs ...Source) Source {
	if len(srcs) == 1 {
		if _, syncs := srcs[0].(Syncer); !syncs {
			return srcs[0]
		}
	}
	m := &merged{srcs: srcs, synced: make([]atomic.Bool, len(srcs)), changed: make(chan struct{}, 1)}
	for i, s := range srcs {
		if syncer, ok := s.(Syncer); ok {
			go m.waitSynced(ctx, i, syncer)
		} else {
			m.synced[i].Store(true)
		}
		go m.forward(ctx, s)
	}
	return m
}

type merged struct {
	srcs    []Source
	synced  []atomic.Bool // per source: its content is complete
	changed chan struct{}
}

func (m *merged) waitSynced(ctx context.Context, i int, s Syncer) {
	if s.WaitSynced(ctx) {
		m.synced[i].Store(true)
		m.signal() // its content joins the snapshot
	}
}

func (m *merged) forward(ctx context.Context, s Source) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Changed():
			m.signal()
		}
	}
}

func (m *merged) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Ready reports whether every source has synced.
func (m *merged) Ready() bool {
	for i := range m.synced {
		if !m.synced[i].Load() {
			return false
		}
	}
	return true
}

func (m *merged) Changed() <-chan struct{} { return m.changed }

func (m *merged) Snapshot() model.Snapshot {
	var snap model.Snapshot
	for i, s := range m.srcs {
		if m.synced[i].Load() {
			snap.Append(s.Snapshot())
		}
	}
	return snap
}
