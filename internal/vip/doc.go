// Package vip leases stable virtual IPs to ServiceEntry hosts that have no address of their
// own (docs/vips.md), so a proxy can tell their traffic apart by destination.
//
// It owns the pools (--vip-cidr, --vip-cidr6), the choice of address for each key
// (namespace, host), quarantine of freed addresses (--vip-quarantine), the persisted State
// and its file store (--state-dir). It knows neither DNS nor Kubernetes: Claims reads the
// model snapshot, the table turns Assignments into records. An Allocator is used by the
// single builder goroutine only and is not safe for concurrent use; its Metrics are.
//
// Invariants:
//   - A claimed key keeps its address for as long as it is claimed, whatever else is added,
//     removed or renamed (a rename is a removal and an addition), and across restarts
//     (State, Restore).
//   - No two claimed keys share an address. Neither the network address nor the last address
//     of a pool is handed out; of an IPv6 pool larger than 2^63 addresses only the first 2^63
//     offsets are used.
//   - A new key starts at FNV-1a("namespace/host") modulo the usable addresses and probes
//     upward; new keys are served oldest first, then in key order, so allocators with equal
//     state and claims agree exactly.
//   - A freed address stays reserved for its last key for the quarantine, measured on the
//     injected clock: nobody else gets it meanwhile, and the key gets it back if it returns.
//   - When a persisted state or recorded addresses (Claim.Existing) give one address to two
//     keys, the older claim keeps it, then the smaller key. A persisted lease outranks a
//     recorded address of another key; a recorded address is adopted only by a key holding
//     nothing in that family.
//   - A full pool leaves the key without an address in that family (logged and counted once
//     per key and episode); nothing else moves.
//   - The state file is never written over unread content: an unusable one is renamed to
//     vips.json.bad-<time> first; a non-regular or unreadable one is an error and stays.
//     Restored times are never later than now, so no quarantine outlasts now + quarantine.
package vip
