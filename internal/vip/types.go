package vip

import (
	"net/netip"
	"time"
)

// Key identifies what holds a VIP: a ServiceEntry host in its namespace. Host is lowercase
// without a trailing dot; "*.example.com" for a DYNAMIC_DNS wildcard.
type Key struct {
	Namespace string `json:"namespace"`
	Host      string `json:"host"`
}

func (k Key) String() string { return k.Namespace + "/" + k.Host }

// Lease is one address held by a key, and since when.
type Lease struct {
	Addr  netip.Addr `json:"address"`
	Since time.Time  `json:"since"`
}

// Assignments maps every key that holds addresses to its leases: at most one per family,
// IPv4 first.
type Assignments map[Key][]Lease
