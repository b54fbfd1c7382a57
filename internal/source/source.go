// Package source defines what the table builder reads: a snapshot of model records and a
// signal when it changes. The file (manifest directory) and kube (API server) packages
// implement it; Merge combines them.
package source

import (
	"context"

	"github.com/meshdns/meshdns/internal/model"
)

// Source is a producer of model records.
type Source interface {
	// Snapshot returns everything the source knows now; the caller must not modify it.
	Snapshot() model.Snapshot
	// Changed receives a value after the snapshot has changed.
	Changed() <-chan struct{}
}

// Merge returns a Source whose snapshot is the union of srcs, in order, and which signals when
// any of them does, until ctx ends.
func Merge(ctx context.Context, srcs ...Source) Source {
	if len(srcs) == 1 {
		return srcs[0]
	}
	m := &merged{srcs: srcs, changed: make(chan struct{}, 1)}
	for _, s := range srcs {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-s.Changed():
					select {
					case m.changed <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	return m
}

type merged struct {
	srcs    []Source
	changed chan struct{}
}

func (m *merged) Changed() <-chan struct{} { return m.changed }

func (m *merged) Snapshot() model.Snapshot {
	var snap model.Snapshot
	for _, s := range m.srcs {
		snap.Append(s.Snapshot())
	}
	return snap
}
