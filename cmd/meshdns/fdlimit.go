package main

import (
	"log/slog"

	"github.com/meshdns/meshdns/internal/admin"
	"github.com/meshdns/meshdns/internal/server"
	"github.com/meshdns/meshdns/internal/upstream"
	"golang.org/x/sys/unix"
)

// dnsDescriptors is how many file descriptors DNS may hold at full load: its TCP connections,
// the sockets of outstanding upstream queries, and a reserve for listeners, the API server's
// connections and files.
const dnsDescriptors = server.DefaultMaxTCPConns + upstream.DefaultMaxOutstanding + 128

// fileLimit returns the soft RLIMIT_NOFILE, 0 when unknown. Meshdns does not raise it: the Go
// runtime (1.19 and later) raises the soft limit to the hard one when the process starts.
func fileLimit() uint64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}

// adminLimits caps admin connections well below the descriptor limit nofile (at most a
// sixteenth of it), so that operators' traffic never takes the descriptors DNS needs, and
// warns when the limit is below what DNS needs at full load.
func adminLimits(nofile uint64, log *slog.Logger) admin.Limits {
	conns := admin.DefaultMaxConns
	if nofile == 0 {
		return admin.Limits{MaxConns: conns}
	}
	if c := int(nofile / 16); c < conns {
		conns = max(c, 4)
	}
	if nofile < uint64(dnsDescriptors+conns) {
		log.Warn("file descriptor limit below what DNS may need at full load; raise the hard RLIMIT_NOFILE",
			"limit", nofile, "dns", dnsDescriptors, "admin_connections", conns)
	}
	return admin.Limits{MaxConns: conns}
}
