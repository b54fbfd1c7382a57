package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/meshdns/meshdns/internal/fairshare"
	"github.com/meshdns/meshdns/internal/ratelog"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/miekg/dns"
)

const (
	// ednsSize is the UDP payload size meshdns advertises (the DNS Flag Day 2020 value, which
	// avoids IP fragmentation).
	ednsSize = 1232
	// DefaultMaxUDPSize caps UDP replies whatever size the client advertises: larger ones are
	// fragmented on the way, and every byte above the query's is amplification.
	DefaultMaxUDPSize = ednsSize
	// MaxUDPSizeLimit is the largest MaxUDPSize; the fast path's buffers are this large.
	MaxUDPSizeLimit = 4096
	// DefaultTCPIdleTimeout closes a TCP connection that sends no whole query for this long
	// (RFC 7766 §6.2.3: seconds, not the minutes of RFC 1035).
	DefaultTCPIdleTimeout = 10 * time.Second
	// queryTimeout bounds the work on one query, upstream included.
	queryTimeout = 10 * time.Second
	// DefaultMaxInflight caps queries being answered at once; UDP packets beyond it are
	// dropped (the client retries), so a flood or a dead upstream cannot exhaust memory. Each
	// client address gets a fair share of them (internal/fairshare): a client with none in
	// flight is admitted while any is free, one with some only below MaxInflight/(n+1).
	DefaultMaxInflight = 20000
	// DefaultMaxTCPConns caps open TCP connections; when all are taken, the longest idle one
	// of the source holding the most makes room for a new one.
	DefaultMaxTCPConns = 1000
	// tcpConnsPerClientShare: one source address may hold this share of MaxTCPConns by
	// default (100 of 1,000), so that no client can take every slot (RFC 7766 §6.2.2).
	tcpConnsPerClientShare = 10
	// logInterval is the least time between two log lines about one kind of failure.
	logInterval = 10 * time.Second
)

// Resolver answers one query; *resolver.Resolver implements it.
type Resolver interface {
	Query(ctx context.Context, req *dns.Msg, c resolver.Client) resolver.Reply
	// Epoch numbers the current table; reusable replies of another epoch are void.
	Epoch() uint64
}

// Options configure a Server.
type Options struct {
	// Listen addresses; each gets a UDP socket and a TCP listener on the same port.
	Listen []string
	// Client is the context of every client (namespace and search list), or with Views of
	// every client Views does not know.
	Client resolver.Client
	// Views, when set, gives clients their own context by source address (a node agent).
	Views   *Views
	Logger  *slog.Logger
	Metrics *Metrics
	// LogQueries logs every query and its outcome at info level.
	LogQueries bool
	// MaxInflight and MaxTCPConns default to DefaultMaxInflight and DefaultMaxTCPConns.
	MaxInflight int
	MaxTCPConns int
	// MaxTCPConnsPerClient caps the TCP connections of one source address; a tenth of
	// MaxTCPConns (at least 1) when 0.
	MaxTCPConnsPerClient int
	// TCPIdleTimeout closes a TCP connection that sends no whole query for this long;
	// DefaultTCPIdleTimeout when 0. It is a fifth of that while more than half of MaxTCPConns
	// are open.
	TCPIdleTimeout time.Duration
	// MaxUDPSize caps UDP replies below the client's advertised size (512 bytes without EDNS
	// stays 512); DefaultMaxUDPSize when 0, at most MaxUDPSizeLimit.
	MaxUDPSize int
	// AllowClients are the networks whose queries are answered; queries from other addresses
	// get a bare REFUSED. Nil answers every address.
	AllowClients []netip.Prefix
	// UDPSockets is the number of UDP sockets per listen address (SO_REUSEPORT), each with
	// its own reader; GOMAXPROCS when 0.
	UDPSockets int
	// Now is the clock of the rate-limited logs and of server cookies' timestamps; time.Now
	// when nil.
	Now func() time.Time
	// CookieSecret keys the server cookies (cookie.go); a random one when zero.
	CookieSecret CookieSecret
	// ReusePort lets another process of the same user bind the listen addresses too, so that
	// a new meshdns can start while this one serves and take over (handover.go). Off, a
	// second server on the same address fails to start. An address with port 0 gets a port
	// of its own either way.
	ReusePort bool
}

// Server serves DNS over UDP and TCP.
type Server struct {
	res      Resolver
	opts     Options
	log      *slog.Logger
	udp      [][]*net.UDPConn // per listen address: the sockets sharing its port
	tcp      []net.Listener
	fast     *store                         // packed replies for the fast path; nil when every query is logged
	loops    sync.WaitGroup                 // reader and accept loops
	queries  sync.WaitGroup                 // queries in flight
	inflight *fairshare.Counter[netip.Addr] // queries being answered, by client address
	mu       sync.Mutex
	conns    connTable // open TCP connections, under mu
	closing  bool
	ctx      context.Context
	cancel   context.CancelFunc
	cookies  CookieSecret
	now      func() time.Time

	// Failures that can recur with every packet are logged at most once per logInterval.
	acceptFails, packFails, panicLog, refusedLog *ratelog.Limiter
}

// New returns a server; Start binds it.
func New(res Resolver, o Options) *Server {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.MaxTCPConns <= 0 {
		o.MaxTCPConns = DefaultMaxTCPConns
	}
	if o.MaxTCPConnsPerClient <= 0 {
		o.MaxTCPConnsPerClient = max(o.MaxTCPConns/tcpConnsPerClientShare, 1)
	}
	if o.TCPIdleTimeout <= 0 {
		o.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if o.MaxUDPSize <= 0 {
		o.MaxUDPSize = DefaultMaxUDPSize
	}
	o.MaxUDPSize = min(max(o.MaxUDPSize, dns.MinMsgSize), MaxUDPSizeLimit)
	if o.UDPSockets <= 0 {
		o.UDPSockets = runtime.GOMAXPROCS(0)
	}
	if o.CookieSecret == (CookieSecret{}) {
		o.CookieSecret = randomSecret()
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{res: res, opts: o, log: log, conns: newConnTable(), ctx: ctx, cancel: cancel,
		cookies: o.CookieSecret, now: now,
		inflight:    fairshare.New[netip.Addr](o.MaxInflight),
		acceptFails: ratelog.New(log, logInterval, o.Now), packFails: ratelog.New(log, logInterval, o.Now),
		panicLog: ratelog.New(log, logInterval, o.Now), refusedLog: ratelog.New(log, logInterval, o.Now)}
	if !o.LogQueries {
		s.fast = newStore()
	}
	return s
}

// Start binds every listen address and starts serving. On error nothing stays bound.
func (s *Server) Start() error {
	if err := s.listen(); err != nil {
		return err
	}
	s.serve()
	return nil
}

// listen binds every listen address; on error nothing stays bound.
func (s *Server) listen() error {
	for _, addr := range s.opts.Listen {
		if err := s.bind(addr); err != nil {
			s.closeListeners()
			return err
		}
	}
	return nil
}

// serve starts the reader and accept loops.
func (s *Server) serve() {
	for _, socks := range s.udp {
		for _, c := range socks {
			s.loops.Add(1)
			go s.serveUDP(c)
		}
	}
	for _, l := range s.tcp {
		s.loops.Add(1)
		go s.serveTCP(l)
	}
}

// bind opens TCP and UDP on addr; with port 0 both get the same free port. The UDP sockets
// share the port with SO_REUSEPORT, so the kernel spreads queries over their readers. The TCP
// listener shares it only with ReusePort and a port given: otherwise it keeps a second server
// off the address (a port 0 could else join a listener of another process).
//
// The TCP listener is bound first. The UDP sockets set SO_REUSEPORT when there are several, so
// they could join those of a server that holds the address without ReusePort; bound first,
// they would take part of its queries until the TCP listener failed, and lose them. A port 0
// is one no UDP socket holds: asked for port 0 with SO_REUSEPORT, the kernel counts a port
// held by SO_REUSEPORT sockets of the same user as free, and would join another process's.
func (s *Server) bind(addr string) error {
	_, port, _ := net.SplitHostPort(addr)
	for try := 0; ; try++ {
		at, err := freeUDPPort(addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		lc := ListenConfig(s.opts.ReusePort && port != "0")
		tl, err := lc.Listen(context.Background(), "tcp", at)
		if err != nil {
			if port == "0" && try < 10 {
				continue // the port is someone's for TCP, or was taken meanwhile
			}
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		socks, err := listenUDP(at, s.opts.UDPSockets, s.opts.ReusePort)
		if err != nil {
			tl.Close()
			if port == "0" && try < 10 && errors.Is(err, syscall.EADDRINUSE) {
				continue // the port was taken between choosing and binding it
			}
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		s.udp = append(s.udp, socks)
		s.tcp = append(s.tcp, tl)
		return nil
	}
}

// listenUDP opens n UDP sockets on addr (a port given), sharing the port with SO_REUSEPORT
// when there are several or shared is set.
func listenUDP(addr string, n int, shared bool) ([]*net.UDPConn, error) {
	lc := ListenConfig(shared || n > 1)
	var socks []*net.UDPConn
	for range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			closeAll(socks)
			return nil, err
		}
		socks = append(socks, pc.(*net.UDPConn))
	}
	return socks, nil
}

// freeUDPPort returns addr with a port that no socket holds when addr's is 0: one a socket
// without SO_REUSEPORT was given and let go. Someone may take it before it is bound again;
// bind tries another then.
func freeUDPPort(addr string) (string, error) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port != "0" {
		return addr, nil
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return "", err
	}
	addr = pc.LocalAddr().String()
	return addr, pc.Close()
}

func closeAll(socks []*net.UDPConn) {
	for _, c := range socks {
		c.Close()
	}
}

// Addrs returns the bound addresses ("host:port", UDP and TCP share them), in Listen order.
func (s *Server) Addrs() []string {
	var out []string
	for _, socks := range s.udp {
		out = append(out, socks[0].LocalAddr().String())
	}
	return out
}

func (s *Server) closeListeners() {
	for _, socks := range s.udp {
		closeAll(socks)
	}
	for _, l := range s.tcp {
		l.Close()
	}
}

// Shutdown stops taking new queries and answers those already received: each UDP socket
// leaves its port and answers what the kernel queued on it (handover.go), the TCP listeners
// close. Then it waits for queries in flight until ctx ends, cancels what is left and closes
// the connections. UDP sockets stay open until the in-flight replies are written. It returns
// ctx.Err() when it had to cancel.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns.all {
		// Wake readers blocked on idle connections; in-flight writes still complete.
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	for _, l := range s.tcp {
		l.Close()
	}
	s.drainUDP(ctx)
	done := make(chan struct{})
	go func() { s.loops.Wait(); s.queries.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.cancel()
		s.mu.Lock()
		for c := range s.conns.all {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.cancel()
	s.closeListeners()
	return err
}

func (s *Server) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// serveUDP reads queries from one socket. Fast-path replies are written by the reader itself;
// any other query gets a goroutine, since answering it may wait for upstream.
func (s *Server) serveUDP(c *net.UDPConn) {
	defer s.loops.Done()
	buf := make([]byte, 65535)
	key := make([]byte, 0, keyCap)
	out := make([]byte, 0, MaxUDPSizeLimit)
	var q wireQuery
	for {
		n, addr, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			// Shutdown sets the deadline once the queue is empty; any other error while
			// draining must not end the reader before that.
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) && s.stopping() {
				return
			}
			continue
		}
		from := clientAddr(addr.Addr())
		if !s.allowed(from) {
			if reply := s.refuse(buf[:n], from, false); reply != nil {
				c.WriteToUDPAddrPort(reply, addr)
			}
			continue
		}
		if reply := s.fastReply(buf[:n], from, key, out, &q); reply != nil {
			c.WriteToUDPAddrPort(reply, addr)
			continue
		}
		if !s.acquire(from) {
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		go func() {
			defer s.release(from)
			if out := s.handle(pkt, from, false); out != nil {
				c.WriteToUDPAddrPort(out, addr)
			}
		}()
	}
}

// acquire admits one more query of the client at from, unless MaxInflight are being
// answered or the client holds its share of them while others may need theirs: a client
// repeating questions a silent upstream never answers must not take every slot.
func (s *Server) acquire(from netip.Addr) bool {
	switch s.inflight.Acquire(from) {
	case fairshare.Full:
		s.drop("overload")
		return false
	case fairshare.Share:
		s.drop("client-overload")
		return false
	}
	s.queries.Add(1)
	return true
}

// release ends a query acquire admitted for from.
func (s *Server) release(from netip.Addr) {
	s.inflight.Release(from)
	s.queries.Done()
}
