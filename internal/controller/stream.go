package controller

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshdns/meshdns/internal/xds"
)

// subscription is one resource type of an agent's stream.
type subscription struct {
	st *store
	// initial are the versions the agent said it holds, until the first response; after it
	// the agent holds the store's content at rev, and nothing per agent is kept.
	initial map[string]string
	rev     uint64 // the store's revision the agent is brought up to
	first   bool   // no response sent yet: the first is sent even if empty
	pending string // nonce of the response awaiting its ACK; "": none
}

// agentStream is the state of one agent's stream; only its goroutine touches it.
type agentStream struct {
	c         *Controller
	s         discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	namespace string // from the token, or without Auth as the agent names it
	trusted   bool   // namespace comes from the token
	account   ServiceAccount
	node      string // the agent's id, for logs
	started   bool   // the first request has come
	subs      map[string]*subscription
	wake      chan struct{}
	nonce     int
}

// serveStream serves one agent: the resources of each type it subscribes to, then the
// changes, one response per type awaiting its ACK at a time (an agent that is slow to apply
// them is sent the sum of several changes at once).
func (c *Controller) serveStream(s discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	if !c.Ready() {
		return status.Error(codes.Unavailable, "the controller has not read the cluster yet; try again shortly")
	}
	a := &agentStream{c: c, s: s, subs: map[string]*subscription{}, wake: make(chan struct{}, 1)}
	if err := a.authenticate(s.Context()); err != nil {
		return err
	}
	c.o.Metrics.agents(1)
	defer c.o.Metrics.agents(-1)
	defer func() {
		for _, sub := range a.subs {
			sub.st.unwatch(a.wake)
		}
	}()

	reqs := make(chan *discovery.DeltaDiscoveryRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- r:
			case <-s.Context().Done():
				return
			}
		}
	}()
	for {
		for _, t := range xds.Types {
			if sub := a.subs[t]; sub != nil && sub.pending == "" {
				if err := a.send(t, sub); err != nil {
					return err
				}
			}
		}
		select {
		case <-s.Context().Done():
			return nil
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case r := <-reqs:
			if err := a.handle(r); err != nil {
				return err
			}
		case <-a.wake:
		}
	}
}

func (a *agentStream) authenticate(ctx context.Context) error {
	c := a.c
	if c.o.Auth == nil {
		return nil
	}
	token, err := bearer(ctx)
	if err != nil {
		c.o.Metrics.refused("unauthenticated")
		return status.Error(codes.Unauthenticated, err.Error())
	}
	sa, err := c.o.Auth.Authenticate(ctx, token)
	switch {
	case errors.Is(err, ErrRejected):
		c.o.Metrics.refused("unauthenticated")
		return status.Error(codes.Unauthenticated, err.Error())
	case err != nil:
		c.o.Metrics.refused("unavailable")
		return status.Errorf(codes.Unavailable, "cannot check the token now: %v", err)
	}
	a.namespace, a.trusted, a.account = sa.Namespace, true, sa
	return nil
}

// handle takes one request: the first of a type subscribes to it, later ones acknowledge (or
// reject) a response.
func (a *agentStream) handle(r *discovery.DeltaDiscoveryRequest) error {
	c := a.c
	if !a.started {
		a.started = true
		a.node = r.GetNode().GetId()
		asked := xds.NodeNamespace(r.GetNode())
		switch {
		case !a.trusted:
			a.namespace = asked
		case asked == xds.AllNamespaces && slices.Contains(c.o.FullView, a.account):
			a.namespace = asked
		case asked == xds.AllNamespaces:
			c.o.Metrics.refused("permission_denied")
			return status.Errorf(codes.PermissionDenied, "every namespace's names: the service account %s may not see them (meshdns controller --full-view)", a.account)
		case asked != "" && asked != a.namespace:
			c.o.Metrics.refused("permission_denied")
			return status.Errorf(codes.PermissionDenied, "namespace %q: the token is of a service account in namespace %q", asked, a.namespace)
		}
	}
	t := r.GetTypeUrl()
	for _, name := range r.GetResourceNamesSubscribe() {
		if name != "*" {
			return status.Errorf(codes.InvalidArgument, "subscription to %q: meshdns sends every resource of a type; subscribe to \"*\"", name)
		}
	}
	sub := a.subs[t]
	if sub == nil {
		st := c.subscribe(t, a.namespace, a.wake)
		if st == nil {
			return status.Errorf(codes.InvalidArgument, "unknown resource type %q", t)
		}
		sub = &subscription{st: st, initial: r.GetInitialResourceVersions(), first: true}
		a.subs[t] = sub
		return nil
	}
	if nonce := r.GetResponseNonce(); nonce != "" && nonce == sub.pending {
		sub.pending = ""
		if d := r.GetErrorDetail(); d != nil {
			c.o.Metrics.nacked(t)
			c.log.Warn("an agent rejected an update", "type", xds.ShortType(t), "error", d.GetMessage(), "node", a.node)
		}
	}
	return nil
}

// send sends the changes of one type the agent lacks, if any (and the first response in any
// case: it tells the agent it has everything).
func (a *agentStream) send(t string, sub *subscription) error {
	var resources []*discovery.Resource
	var removed []string
	if sub.first {
		resources, removed, sub.rev = sub.st.compare(sub.initial)
		sub.initial = nil
	} else {
		var err error
		if resources, removed, sub.rev, err = sub.st.changes(sub.rev); err != nil {
			// The agent reconnects at once and names the versions it holds.
			return status.Errorf(codes.Unavailable, "%s: the agent fell %v; reconnect", xds.ShortType(t), err)
		}
		if len(resources)+len(removed) == 0 {
			return nil
		}
	}
	sub.first = false
	a.nonce++
	resp := &discovery.DeltaDiscoveryResponse{TypeUrl: t, Resources: resources, RemovedResources: removed,
		Nonce: strconv.Itoa(a.nonce)}
	sub.pending = resp.GetNonce()
	a.c.o.Metrics.sent(t, len(resources), len(removed), proto.Size(resp))
	return a.s.Send(resp)
}
