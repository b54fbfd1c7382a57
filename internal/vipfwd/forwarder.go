package vipfwd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/meshdns/meshdns/internal/ratelog"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/miekg/dns"
)

const (
	// DefaultDialTimeout bounds resolving a VIP's host and connecting to one of its addresses.
	DefaultDialTimeout = 5 * time.Second
	// DefaultIdleTimeout closes a connection with no bytes either way for this long; database
	// pools keep quiet connections open for minutes, so it is generous.
	DefaultIdleTimeout = time.Hour
	// DefaultMaxConns caps the connections open at once (two descriptors each).
	DefaultMaxConns = 4096
	// refuseLogInterval is the least time between two log lines about refused connections.
	refuseLogInterval = 10 * time.Second
	// workerIdle is how long a goroutine that handled a connection waits for another.
	workerIdle = 10 * time.Second
)

// Resolver is what the forwarder needs of resolver.Resolver: the current table (VIP to host)
// and upstream answers for the host's real addresses.
type Resolver interface {
	Table() *table.Table
	Upstream(ctx context.Context, req *dns.Msg, c resolver.Client) resolver.Reply
}

// Options configure a Forwarder.
type Options struct {
	// Listen are the addresses to accept redirected connections on: nat REDIRECT of locally
	// made connections delivers them to 127.0.0.1 and ::1. An address the host lacks (no IPv6
	// loopback) is skipped with a warning.
	Listen []string
	// Control, when set, sets socket options of the listeners before they bind (SO_REUSEPORT,
	// so that a new meshdns can bind while this one runs).
	Control  func(network, address string, c syscall.RawConn) error
	Resolver Resolver
	// Client is who the forwarder asks upstream as (its fair share of upstream queries).
	Client resolver.Client
	// DialTimeout, IdleTimeout and MaxConns default to the constants above when zero.
	DialTimeout, IdleTimeout time.Duration
	MaxConns                 int
	Logger                   *slog.Logger
	Metrics                  *Metrics
	// NAT, when set, is told where each forwarded connection went, so that later
	// connections to the same VIP and port take the kernel path.
	NAT *NAT
}

// Forwarder accepts connections redirected from VIPs and copies them to the VIPs' hosts.
type Forwarder struct {
	opts      Options
	log       *slog.Logger
	refusals  *ratelog.Limiter
	slots     chan struct{}
	idle      chan *net.TCPConn // connections for goroutines waiting in work
	ctx       context.Context
	cancel    context.CancelFunc
	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*net.TCPConn]struct{}
	closed    bool
	wg        sync.WaitGroup
	// origDst reads a connection's original destination; tests replace it.
	origDst func(*net.TCPConn) (netip.AddrPort, error)
}

// New returns a forwarder; Start binds it.
func New(o Options) *Forwarder {
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{opts: o, log: log, refusals: ratelog.New(log, refuseLogInterval, nil),
		slots: make(chan struct{}, o.MaxConns), idle: make(chan *net.TCPConn), conns: map[*net.TCPConn]struct{}{}, origDst: originalDst}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f
}

// Start binds the listeners and accepts connections until Close.
func (f *Forwarder) Start() error {
	// Redirected connections come from local processes, whose end the kernel reports at
	// once: keep-alive probes on them would find nothing, and cost four system calls per
	// connection to set up.
	lc := net.ListenConfig{KeepAlive: -1, Control: f.opts.Control}
	for _, addr := range f.opts.Listen {
		ln, err := lc.Listen(f.ctx, "tcp", addr)
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			f.log.Warn("VIP forwarder: address not available, skipped", "addr", addr)
			continue
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("vip forwarder: %w", err)
		}
		f.mu.Lock()
		f.listeners = append(f.listeners, ln)
		f.mu.Unlock()
	}
	if len(f.listeners) == 0 {
		return fmt.Errorf("vip forwarder: none of %v can be bound", f.opts.Listen)
	}
	for _, ln := range f.listeners {
		f.wg.Add(1)
		go f.accept(ln.(*net.TCPListener))
	}
	return nil
}

// Addrs returns the bound listen addresses.
func (f *Forwarder) Addrs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ln := range f.listeners {
		out = append(out, ln.Addr().String())
	}
	return out
}

// Close stops accepting, closes every open connection and waits for their goroutines.
func (f *Forwarder) Close() {
	f.mu.Lock()
	f.closed = true
	for _, ln := range f.listeners {
		ln.Close()
	}
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

func (f *Forwarder) accept(ln *net.TCPListener) {
	defer f.wg.Done()
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.refusals.Warn("VIP forwarder: accept failed", "err", err)
			time.Sleep(10 * time.Millisecond) // out of descriptors: do not spin
			continue
		}
		select {
		case f.slots <- struct{}{}:
		default:
			f.refuse(c, resultLimit, "max", f.opts.MaxConns)
			continue
		}
		if !f.track(c) {
			<-f.slots
			f.refuse(c, resultLimit, "closing", true)
			continue
		}
		select {
		case f.idle <- c: // a goroutine done with an earlier connection takes it
		default:
			f.wg.Add(1)
			go f.work(c)
		}
	}
}

// work handles c, then each connection handed to it while it waits, until it has waited
// workerIdle for one or the forwarder closes. A new goroutine's stack grows, by copying, to
// what a connection needs (resolver, dialer, splice), which costs more than the table lookup
// and the cached answer together; a goroutine that is reused has grown already.
func (f *Forwarder) work(c *net.TCPConn) {
	defer f.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f.handle(c)
		f.untrack(c)
		<-f.slots
		idle.Reset(workerIdle)
		select {
		case c = <-f.idle:
		case <-idle.C:
			return
		case <-f.ctx.Done():
			return
		}
	}
}

// track records an open client connection, so that Close can end it; false after Close.
func (f *Forwarder) track(c *net.TCPConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forwarder) untrack(c *net.TCPConn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// refuse resets c (SO_LINGER 0: the client sees a refusal, not an orderly end), counts it
// under result and logs it at a limited rate.
func (f *Forwarder) refuse(c *net.TCPConn, result string, args ...any) {
	f.opts.Metrics.result(result)
	c.SetLinger(0)
	c.Close()
	f.refusals.Warn("VIP connection refused", append([]any{"reason", result, "client", c.RemoteAddr().String()}, args...)...)
}
