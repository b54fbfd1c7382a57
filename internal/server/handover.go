package server

import (
	"context"
	"errors"
	"net"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Hand-over (docs/cli.md, Signals): a new meshdns binds the same addresses while this one
// serves (SO_REUSEPORT; the kernel then spreads datagrams and connections over both
// processes' sockets), and Shutdown gives the port up without losing what the kernel already
// queued on this process's UDP sockets:
//
//  1. Each UDP socket is connected to its own address. Since Linux 5.4 the kernel hands a
//     datagram to a connected member of a SO_REUSEPORT group only when it comes from that
//     member's peer, so from then on every query goes to the sockets that are not connected
//     (the successor's), or, if there is none, is refused with ICMP port unreachable. The
//     socket stays open and keeps its receive queue, and replies still go out through it.
//  2. A datagram the kernel routed to a socket just before it was connected may still be on its
//     way into the queue; a system-wide RCU grace period (membarrier) waits for it.
//  3. Each reader goes on answering until its socket's queue is empty; nothing can be added to
//     it any more, so the reader then stops and nothing queued is lost.
//
// Closing a socket instead discards its queue: that is what the hand-over avoids. The TCP
// listeners are closed; connections the kernel accepted for them but meshdns did not take yet
// are reset, unless net.ipv4.tcp_migrate_req=1 (Linux 5.14) moves them to the successor.

// drainPoll is how often Shutdown looks whether a socket that left its port has answered all
// it had queued.
const drainPoll = time.Millisecond

// settleWait stands in for the RCU grace period when membarrier is not available (a seccomp
// profile without it, nohz_full): a datagram routed to a socket is queued within microseconds.
const settleWait = 50 * time.Millisecond

// membarrierCmdGlobal is MEMBARRIER_CMD_GLOBAL (linux/membarrier.h): it returns once every CPU
// has passed an RCU grace period (synchronize_rcu), and so every packet being delivered.
const membarrierCmdGlobal = 1

// errUnspecified: a socket on every address cannot leave by connecting to its own address,
// since connecting gives it one source address for every reply.
var errUnspecified = errors.New("bound to the unspecified address")

// reusePort is a ListenConfig.Control that sets SO_REUSEPORT before bind.
func reusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// ListenConfig returns the ListenConfig of a socket that other processes of the same user may
// bind as well (shared) or not.
func ListenConfig(shared bool) net.ListenConfig {
	if shared {
		return net.ListenConfig{Control: reusePort}
	}
	return net.ListenConfig{}
}

// Held reports whether addr's UDP port is bound already, by a meshdns this one may join
// (SO_REUSEPORT, same user) or by anything else. A port 0 is never held.
func Held(addr string) bool {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	pc.Close()
	return false
}

// drainUDP stops the UDP readers once each socket has left its port and answered what it had
// queued (the steps above); when ctx ends first, the rest stop at once. A socket that cannot
// leave stops at once too, losing what it had queued.
func (s *Server) drainUDP(ctx context.Context) {
	var left []*net.UDPConn
	for _, socks := range s.udp {
		for _, c := range socks {
			if err := leave(c); err != nil {
				s.log.Debug("UDP socket stops without draining", "addr", c.LocalAddr().String(), "err", err)
				c.SetReadDeadline(time.Now())
				continue
			}
			left = append(left, c)
		}
	}
	if len(left) == 0 {
		return
	}
	settle()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		left = slices.DeleteFunc(left, func(c *net.UDPConn) bool {
			if queued(c) {
				return false
			}
			c.SetReadDeadline(time.Now()) // nothing more can arrive: the reader stops
			return true
		})
		if len(left) == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			for _, c := range left {
				c.SetReadDeadline(time.Now())
			}
			return
		}
	}
}

// leave connects c to its own address, so that the kernel delivers no more queries to it.
func leave(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	err = rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			lerr = err
			return
		}
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			if a.Addr == [4]byte{} {
				lerr = errUnspecified
				return
			}
		case *unix.SockaddrInet6:
			if a.Addr == [16]byte{} {
				lerr = errUnspecified
				return
			}
		}
		lerr = unix.Connect(int(fd), sa)
	})
	if err != nil {
		return err
	}
	return lerr
}

// settle waits until datagrams the kernel was delivering to a socket that has just left are
// in its queue.
func settle() {
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0); errno != 0 {
		time.Sleep(settleWait)
	}
}

// queued reports whether a datagram waits in c's receive queue. An error other than "none"
// (a pending ICMP error, which the peek clears) counts as one: the next poll looks again.
func queued(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false // closed: nothing to drain
	}
	var b [1]byte
	var perr error
	if err := rc.Control(func(fd uintptr) {
		_, _, perr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	}); err != nil {
		return false
	}
	return !errors.Is(perr, unix.EAGAIN)
}
