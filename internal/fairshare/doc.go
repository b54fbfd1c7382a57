// Package fairshare shares a fixed number of slots for work in flight among the keys (client
// addresses, sources) that start the work, so that one key cannot take every slot. The
// upstream forwarder shares its outstanding exchanges with it, and the server its queries
// being answered (docs/upstream.md, docs/observability.md).
//
// The rule, its one home: a key holding nothing is admitted while any slot is free; a key
// holding some is admitted only below Max/(n+1), n the keys holding slots. The key that holds
// the most is refused first, and a slice of the slots stays free for a key yet to come: one
// key alone may hold half; a flood from one key leaves the other half to the rest.
//
// Invariants: Total is the sum of what the keys hold, never above Max; a key is in the table
// only while it holds a slot, so the table is bounded by Max.
package fairshare
