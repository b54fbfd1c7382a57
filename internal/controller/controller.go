package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/meshdns/meshdns/internal/source"
	"github.com/meshdns/meshdns/internal/xds"
)

// DefaultDebounce is how long the controller waits after a change for more changes before it
// sends them: a rollout changes many EndpointSlices within milliseconds.
const DefaultDebounce = 100 * time.Millisecond

// Authenticator checks an agent's bearer token.
type Authenticator interface {
	// Authenticate returns the service account token was issued to. An error wrapping
	// ErrRejected means the token is not valid; other errors mean it could not be checked now.
	Authenticate(ctx context.Context, token string) (ServiceAccount, error)
}

// ServiceAccount names a Kubernetes service account.
type ServiceAccount struct{ Namespace, Name string }

func (sa ServiceAccount) String() string { return sa.Namespace + "/" + sa.Name }

// ErrRejected marks a token that is not valid (unknown, expired, wrong audience, not a
// service account's).
var ErrRejected = errors.New("token rejected")

// Options configure a Controller.
type Options struct {
	Source source.Source
	// Changed signals that the source's snapshot may have changed; nil: Source.Changed().
	// Give it when something else (a table builder) reads Source.Changed(), which has room
	// for one reader only.
	Changed <-chan struct{}
	// Auth checks the token of every stream; nil trusts the namespace an agent names (tests,
	// and agents on a network only they reach).
	Auth Authenticator
	// FullView are the service accounts whose agents may ask for every namespace's names
	// (xds.AllNamespaces): node agents, which answer the pods of every namespace. Without Auth
	// any agent may.
	FullView []ServiceAccount
	Debounce time.Duration
	Logger   *slog.Logger
	Metrics  *Metrics
}

// Controller holds the resources of the latest snapshot in one cache per type (and one per
// namespace for scoped ServiceEntries) and serves them to agents.
type Controller struct {
	o     Options
	log   *slog.Logger
	ready atomic.Bool // the first complete snapshot is in the stores

	mu      sync.Mutex
	shared  map[string]*store // by type
	scoped  map[string]*store // TypeScopedServiceEntry, by namespace
	current xds.Resources
}

// New returns a Controller; Run feeds it, Register serves it.
func New(o Options) *Controller {
	if o.Debounce == 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Changed == nil {
		o.Changed = o.Source.Changed()
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{o: o, log: log, shared: map[string]*store{}, scoped: map[string]*store{},
		current: xds.Resources{Shared: map[string]xds.Set{}, Scoped: map[string]xds.Set{}}}
	for _, t := range xds.Types {
		if t != xds.TypeScopedServiceEntry {
			c.shared[t] = newStore(t)
		}
	}
	return c
}

// Ready reports whether agents are being served: the source has synced and its snapshot is
// in the caches. Until then streams are refused, so that a controller that has just started
// never tells an agent that everything it holds was deleted.
func (c *Controller) Ready() bool { return c.ready.Load() }

// Run applies the source's snapshot once it is complete, then after every burst of changes,
// until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	src := c.o.Source
	for !source.Ready(src) {
		select {
		case <-ctx.Done():
			return
		case <-c.o.Changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Everything signalled so far is in this first snapshot.
	select {
	case <-c.o.Changed:
	default:
	}
	c.apply(src)
	c.ready.Store(true)
	c.log.Info("serving agents", "resources", c.count())
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-c.o.Changed:
			timer.Reset(c.o.Debounce)
			continue
		case <-timer.C:
		}
		c.apply(src)
	}
}

// apply turns the source's snapshot into resources and hands the caches what changed.
func (c *Controller) apply(src source.Source) {
	start := time.Now()
	next := xds.Split(src.Snapshot())
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := 0
	for t, st := range c.shared {
		changed += c.update(st, c.current.Shared[t], next.Shared[t])
	}
	for ns := range c.current.Scoped {
		if _, ok := next.Scoped[ns]; !ok {
			next.Scoped[ns] = xds.Set{}
		}
	}
	for ns, set := range next.Scoped {
		st := c.scopedStore(ns)
		changed += c.update(st, c.current.Scoped[ns], set)
		if len(set) == 0 && st.watchers() == 0 {
			// Nobody left to tell: the namespace's agents get an empty store when they come.
			delete(c.scoped, ns)
			delete(next.Scoped, ns)
		}
	}
	c.current = next
	c.o.Metrics.applied(changed, time.Since(start))
	c.log.Debug("resources updated", "changed", changed, "took", time.Since(start))
}

// update hands st the difference between old and next, and returns its size.
func (c *Controller) update(st *store, old, next xds.Set) int {
	upd := map[string]proto.Message{}
	for name, m := range next {
		if o, ok := old[name]; !ok || !proto.Equal(o, m) {
			upd[name] = m
		}
	}
	var del []string
	for name := range old {
		if _, ok := next[name]; !ok {
			del = append(del, name)
		}
	}
	n, err := st.update(upd, del)
	if err != nil {
		// Only a message that cannot be marshaled fails, which the model's never are.
		c.log.Error("resources not updated", "type", st.typeURL, "err", err)
	}
	return n
}

// scopedStore returns the store of the scoped ServiceEntries namespace ns sees, made from
// the current ones on first use. c.mu is held.
func (c *Controller) scopedStore(ns string) *store {
	st := c.scoped[ns]
	if st == nil {
		st = newStore(xds.TypeScopedServiceEntry)
		initial := map[string]proto.Message{}
		for name, m := range c.current.Scoped[ns] {
			initial[name] = m
		}
		if _, err := st.update(initial, nil); err != nil {
			c.log.Error("resources not updated", "type", st.typeURL, "err", err)
		}
		c.scoped[ns] = st
	}
	return st
}

// subscribe returns the store a stream of a client in namespace ns reads for typeURL, with
// wake registered to be told of its changes; nil for an unknown type.
func (c *Controller) subscribe(typeURL, ns string, wake chan struct{}) *store {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.shared[typeURL]
	if typeURL == xds.TypeScopedServiceEntry {
		st = c.scopedStore(ns)
	}
	if st != nil {
		st.watch(wake)
	}
	return st
}

func (c *Controller) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.current.Shared {
		n += len(s)
	}
	for _, s := range c.current.Scoped {
		n += len(s)
	}
	return n
}

// ServerOptions are the gRPC server options agents need: the controller pings idle streams so
// that a vanished agent (a node gone) releases its stream, and accepts the agents' own pings
// (every 30 s; gRPC's default refuses pings more often than every 5 minutes with GOAWAY
// "too_many_pings", which would cut every agent's stream).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}

// Register serves the aggregated delta xDS service on s. The state-of-the-world variant is
// not served: a full resend on every change is what this design exists to avoid.
func (c *Controller) Register(s *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(s, ads{c: c})
}

type ads struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	c *Controller
}

func (a ads) DeltaAggregatedResources(s discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return a.c.serveStream(s)
}

// bearer returns the token of the stream's "authorization: Bearer" metadata.
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", fmt.Errorf("no token: send a service account token as \"authorization: Bearer TOKEN\"")
	}
	token, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return "", fmt.Errorf("authorization metadata is not \"Bearer TOKEN\"")
	}
	return strings.TrimSpace(token), nil
}
