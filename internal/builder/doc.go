// Package builder runs the single goroutine that turns source changes into published tables:
// it waits for a change signal, lets a burst of changes settle (debounce), takes one snapshot
// of all sources, builds a new immutable table and publishes it.
//
// Invariants: builds never overlap; a failed build keeps the previously published table
// serving; generations increase by one per published table; the VIP state is saved before
// the table answering with it is published, and a failed save is retried until it succeeds.
package builder
