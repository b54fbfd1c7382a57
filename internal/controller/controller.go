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

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/delta/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshdns/meshdns/internal/source"
	"github.com/meshdns/meshdns/internal/xds"
)

// DefaultDebounce is how long the controller waits after a change for more changes before it
// sends them: a rollout changes many EndpointSlices within milliseconds.
const DefaultDebounce = 100 * time.Millisecond

// Authenticator checks an agent's bearer token.
type Authenticator interface {
	// Authenticate returns the namespace of the service account token was issued to. An error
	// wrapping ErrRejected means the token is not valid; other errors mean it could not be
	// checked now.
	Authenticate(ctx context.Context, token string) (namespace string, err error)
}

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
	Auth     Authenticator
	Debounce time.Duration
	Logger   *slog.Logger
	Metrics  *Metrics
}

// Controller holds the resources of the latest snapshot in one cache per type (and one per
// namespace for scoped ServiceEntries) and serves them to agents.
type Controller struct {
	o     Options
	log   *slog.Logger
	delta delta.Server
	ready atomic.Bool // the first complete snapshot is in the caches

	mu      sync.Mutex
	shared  map[string]*cache.LinearCache // by type
	scoped  map[string]*cache.LinearCache // TypeScopedServiceEntry, by namespace
	current xds.Resources
	streams map[int64]*agentStream
}

// agentStream is what the controller knows of one agent's stream.
type agentStream struct {
	namespace string // authenticated (or, without Auth, as the agent named it)
	trusted   bool   // namespace comes from the token
	node      bool   // the first request has been given the stream's node
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
	c := &Controller{o: o, log: log, shared: map[string]*cache.LinearCache{}, scoped: map[string]*cache.LinearCache{},
		current: xds.Resources{Shared: map[string]xds.Set{}, Scoped: map[string]xds.Set{}}, streams: map[int64]*agentStream{}}
	for _, t := range xds.Types {
		if t != xds.TypeScopedServiceEntry {
			c.shared[t] = cache.NewLinearCache(t)
		}
	}
	c.delta = delta.NewServer(context.Background(), views{c}, callbacks{c})
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
	for t, lc := range c.shared {
		changed += update(lc, c.current.Shared[t], next.Shared[t])
	}
	for ns := range c.current.Scoped {
		if _, ok := next.Scoped[ns]; !ok {
			next.Scoped[ns] = xds.Set{}
		}
	}
	for ns, set := range next.Scoped {
		changed += update(c.scopedCache(ns), c.current.Scoped[ns], set)
		if len(set) == 0 && c.scoped[ns].NumCacheWatches() == 0 {
			// Nobody left to tell: the namespace's agents get an empty cache when they come.
			delete(c.scoped, ns)
			delete(next.Scoped, ns)
		}
	}
	c.current = next
	c.o.Metrics.applied(changed, time.Since(start))
	c.log.Debug("resources updated", "changed", changed, "took", time.Since(start))
}

// update hands lc the difference between old and next, and returns its size.
func update(lc *cache.LinearCache, old, next xds.Set) int {
	upd := map[string]types.Resource{}
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
	if len(upd)+len(del) > 0 {
		// Errors come only from resources that cannot be marshaled, which ours always can.
		_ = lc.UpdateResources(upd, del)
	}
	return len(upd) + len(del)
}

// scopedCache returns the cache of the scoped ServiceEntries namespace ns sees, made from
// the current ones on first use. c.mu is held.
func (c *Controller) scopedCache(ns string) *cache.LinearCache {
	lc := c.scoped[ns]
	if lc == nil {
		initial := map[string]types.Resource{}
		for name, m := range c.current.Scoped[ns] {
			initial[name] = m
		}
		lc = cache.NewLinearCache(xds.TypeScopedServiceEntry, cache.WithInitialResources(initial))
		c.scoped[ns] = lc
	}
	return lc
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

// Register serves the aggregated delta xDS service on s. The state-of-the-world variant is
// not served: a full resend on every change is what this design exists to avoid.
func (c *Controller) Register(s *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(s, ads{d: c.delta})
}

type ads struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	d delta.Server
}

func (a ads) DeltaAggregatedResources(s discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return a.d.DeltaStreamHandler(s, "") // "": ADS, every type on one stream
}

// views picks the cache of a watch: the shared one of its type, or for scoped
// ServiceEntries that of the stream's namespace (set on the request's node by the callbacks,
// from the token).
type views struct{ c *Controller }

func (v views) CreateWatch(*cache.Request, cache.Subscription, chan cache.Response) (func(), error) {
	return nil, status.Error(codes.Unimplemented, "meshdns serves delta xDS only")
}

func (v views) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) (func(), error) {
	c := v.c
	c.mu.Lock()
	lc := c.shared[req.GetTypeUrl()]
	if req.GetTypeUrl() == xds.TypeScopedServiceEntry {
		lc = c.scopedCache(xds.NodeNamespace(req.GetNode()))
	}
	c.mu.Unlock()
	if lc == nil {
		return nil, status.Errorf(codes.InvalidArgument, "unknown resource type %q (want one of %s)",
			req.GetTypeUrl(), strings.Join(xds.Types, ", "))
	}
	return lc.CreateDeltaWatch(req, sub, out)
}

// callbacks authenticate each stream and pin its namespace on the node its requests carry.
type callbacks struct{ c *Controller }

func (cb callbacks) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	c := cb.c
	if !c.Ready() {
		return status.Error(codes.Unavailable, "the controller has not read the cluster yet; try again shortly")
	}
	st := &agentStream{}
	if c.o.Auth != nil {
		token, err := bearer(ctx)
		if err != nil {
			c.o.Metrics.refused("unauthenticated")
			return status.Error(codes.Unauthenticated, err.Error())
		}
		ns, err := c.o.Auth.Authenticate(ctx, token)
		switch {
		case errors.Is(err, ErrRejected):
			c.o.Metrics.refused("unauthenticated")
			return status.Error(codes.Unauthenticated, err.Error())
		case err != nil:
			c.o.Metrics.refused("unavailable")
			return status.Errorf(codes.Unavailable, "cannot check the token now: %v", err)
		}
		st.namespace, st.trusted = ns, true
	}
	c.mu.Lock()
	c.streams[id] = st
	c.mu.Unlock()
	c.o.Metrics.agents(1)
	return nil
}

func (cb callbacks) OnDeltaStreamClosed(id int64, _ *core.Node) {
	c := cb.c
	c.mu.Lock()
	_, ok := c.streams[id]
	delete(c.streams, id)
	c.mu.Unlock()
	if ok {
		c.o.Metrics.agents(-1)
	}
}

func (cb callbacks) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	c := cb.c
	c.mu.Lock()
	st := c.streams[id]
	c.mu.Unlock()
	if st == nil {
		return status.Error(codes.Internal, "unknown stream")
	}
	if d := req.GetErrorDetail(); d != nil {
		c.o.Metrics.nacked(req.GetTypeUrl())
		c.log.Warn("an agent rejected an update", "type", req.GetTypeUrl(), "error", d.GetMessage(), "node", req.GetNode().GetId())
	}
	if st.node && req.GetNode() == nil {
		return nil // the server gives it the stream's node
	}
	asked := xds.NodeNamespace(req.GetNode())
	if !st.trusted {
		if st.node && asked != st.namespace {
			return status.Errorf(codes.InvalidArgument, "namespace %q: the stream is for %q", asked, st.namespace)
		}
		st.namespace = asked
	} else if asked != "" && asked != st.namespace {
		c.o.Metrics.refused("permission_denied")
		return status.Errorf(codes.PermissionDenied, "namespace %q: the token is of a service account in namespace %q", asked, st.namespace)
	}
	st.node = true
	req.Node = xds.NodeOf(req.GetNode().GetId(), st.namespace)
	return nil
}

func (cb callbacks) OnStreamDeltaResponse(_ int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	cb.c.o.Metrics.sent(resp.GetTypeUrl(), len(resp.GetResources()), len(resp.GetRemovedResources()), proto.Size(resp))
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
