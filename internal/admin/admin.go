package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ViewHeader names the view a /debug/table answer shows: "all", or the client's view that
// Options.ClientView describes.
const ViewHeader = "Meshdns-Table-View"

// Options configure the admin server.
type Options struct {
	Addr string
	// Listen binds Addr; its Control may set socket options (SO_REUSEPORT, so that a new
	// meshdns can bind the admin address while this one runs). The zero value binds plainly.
	Listen   net.ListenConfig
	Gatherer prometheus.Gatherer
	// Ready reports whether the first table is published.
	Ready func() bool
	// Details, when set, returns lines /readyz adds to its answer: problems an operator
	// should see that do not decide readiness (a VIP state file that cannot be saved).
	Details func() []string
	// Table returns the live table for /debug/table.
	Table func() TableDump
	// ClientView describes the names /debug/table shows without ?all=1 (those of the client
	// namespace meshdns serves), for ViewHeader.
	ClientView string
	// Explain, when set, serves /debug/explain.
	Explain ExplainFunc
	// Limits bound connections, requests and their durations; zero fields take the defaults.
	Limits  Limits
	Metrics *Metrics // nil: counted nowhere
	Logger  *slog.Logger
}

// TableDump is the live table as /debug/table shows it.
type TableDump struct {
	// Generation identifies the table (0: none yet): one rendering of each view is made per
	// generation, and every request of that generation is sent a copy of it.
	Generation uint64
	// Write writes the table as a JSON list: every name when all is set, else the names the
	// client namespace sees.
	Write func(w io.Writer, all bool) error
}

// Server is the admin HTTP server.
type Server struct {
	o       Options
	m       *Metrics
	ln      *connLimiter
	srv     *http.Server
	slots   chan struct{} // one per request of the limited endpoints in flight
	renders renderings
	done    chan struct{}
}

// New returns a server; Start binds it.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Table == nil {
		o.Table = func() TableDump { return TableDump{Write: func(w io.Writer, _ bool) error { return writeEmpty(w) }} }
	}
	o.Limits = o.Limits.withDefaults()
	m := o.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Server{o: o, m: m, slots: make(chan struct{}, o.Limits.MaxRequests), done: make(chan struct{})}
}

func writeEmpty(w io.Writer) error {
	_, err := io.WriteString(w, "[]\n")
	return err
}

// Handler returns the admin routes. /metrics, /debug/table and /debug/explain, whose answers
// take work, share Limits.MaxRequests; the probes' /healthz and /readyz are never refused for them.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.limited(promhttp.HandlerFor(s.o.Gatherer, promhttp.HandlerOpts{})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /debug/table", s.limited(http.HandlerFunc(s.debugTable)))
	mux.Handle("GET /debug/explain", s.limited(http.HandlerFunc(s.debugExplain)))
	return mux
}

// readyz answers 200 "ok" once the first table is published, 503 before, followed by the
// details in both cases.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if s.o.Ready() {
		fmt.Fprintln(w, "ok")
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: no name table built from every source yet")
	}
	if s.o.Details != nil {
		for _, d := range s.o.Details() {
			fmt.Fprintln(w, d)
		}
	}
}

// limited serves h while fewer than Limits.MaxRequests limited requests are in flight, and
// answers 503 with Retry-After otherwise: a flood of expensive requests is refused, not queued.
func (s *Server) limited(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.slots <- struct{}{}:
		default:
			s.m.rejected.Inc()
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy: too many admin requests in flight; retry later", http.StatusServiceUnavailable)
			return
		}
		s.m.inFlight.Inc()
		defer func() {
			s.m.inFlight.Dec()
			<-s.slots
		}()
		h.ServeHTTP(w, r)
	})
}

// debugTable sends the rendering of the live table's view: the client's, or every name with
// ?all=1. ViewHeader says which.
func (s *Server) debugTable(w http.ResponseWriter, r *http.Request) {
	all, _ := strconv.ParseBool(r.URL.Query().Get("all"))
	body, err := s.renders.get(s.o.Table(), all)
	if err != nil {
		s.o.Logger.Error("cannot render /debug/table", "err", err)
		http.Error(w, "cannot render the table", http.StatusInternalServerError)
		return
	}
	view := s.o.ClientView
	if all {
		view = "all"
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set(ViewHeader, view)
	w.Write(body)
}

// Start binds the address and serves in the background.
func (s *Server) Start() error {
	ln, err := s.o.Listen.Listen(context.Background(), "tcp", s.o.Addr)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", s.o.Addr, err)
	}
	l := s.o.Limits
	s.ln = newConnLimiter(ln, l.MaxConns, s.m)
	s.srv = &http.Server{Handler: s.Handler(), ConnState: s.ln.track,
		ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout,
		WriteTimeout: l.WriteTimeout, IdleTimeout: l.IdleTimeout,
		ErrorLog: slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn)}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.o.Logger.Error("admin server stopped", "err", err)
		}
	}()
	return nil
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the server, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
