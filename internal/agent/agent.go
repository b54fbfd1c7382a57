package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/meshdns/meshdns/api/meshdns/v1"
	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/ratelog"
	"github.com/meshdns/meshdns/internal/safefile"
	"github.com/meshdns/meshdns/internal/xds"
)

// StateFile is the name of the saved resources in --state-dir.
const StateFile = "controller-state.pb"

// maxStateBytes bounds the saved state read at start (a million names take about 200 MB).
const maxStateBytes = 1 << 30

// Defaults of the reconnection backoff and of the save interval.
const (
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 15 * time.Second
	// A rejected token is not going to be accepted in a second: wait longer.
	refusedBackoff = 5 * time.Second
	saveDelay      = time.Second
)

// Options configure a Source.
type Options struct {
	// Addrs are the controller's addresses (host:port); each reconnection tries the next.
	Addrs []string
	// TLS verifies the controller; nil connects in plain text (no token is sent then).
	TLS *tls.Config
	// TokenFile holds the service account token; it is read afresh for every stream, so a
	// rotated projected token is used from the next reconnection on.
	TokenFile string
	Namespace string
	NodeID    string
	// StateDir keeps the last resources; "" keeps them in memory only.
	StateDir               string
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	Metrics                *Metrics
}

func newHeld() map[string]heldSet {
	held := map[string]heldSet{}
	for _, t := range xds.Types {
		held[t] = nil
	}
	return held
}

// Source holds the resources received from the controller; it is a source.Source and a
// source.Syncer.
type Source struct {
	o       Options
	log     *slog.Logger
	errs    *ratelog.Limiter
	changed chan struct{}
	synced  chan struct{} // closed once the agent has a complete set: received, or loaded
	saveNow chan struct{}

	mu        sync.Mutex
	held      map[string]heldSet // by type
	isSynced  bool
	connected bool
	loadedAt  time.Time // when the loaded state was saved; zero if none was loaded
	lastErr   string
}

// New returns a Source; with a StateDir it loads the saved resources, so that the first
// table answers from them while the controller is still out of reach.
func New(o Options) (*Source, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("no controller address")
	}
	if o.TokenFile != "" && o.TLS == nil {
		return nil, errors.New("a token is only sent over TLS: give the controller's CA")
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{o: o, log: log, errs: ratelog.New(log, time.Minute, time.Now), changed: make(chan struct{}, 1),
		synced: make(chan struct{}), saveNow: make(chan struct{}, 1), held: newHeld()}
	if o.StateDir != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Changed receives a value after the snapshot has changed.
func (s *Source) Changed() <-chan struct{} { return s.changed }

func (s *Source) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// WaitSynced returns true once the agent has a complete set of resources, or false when ctx
// ends first.
func (s *Source) WaitSynced(ctx context.Context) bool {
	select {
	case <-s.synced:
		return true
	case <-ctx.Done():
		return false
	}
}

// Snapshot returns the objects held now, decoded anew for each call (the builder makes one
// call per change).
func (s *Source) Snapshot() model.Snapshot {
	s.mu.Lock()
	all := make([]xds.Encoded, 0, s.count())
	for _, t := range xds.Types {
		for _, e := range s.held[t] {
			all = append(all, xds.Encoded{TypeURL: t, Value: e.value()})
		}
	}
	s.mu.Unlock()
	snap, err := xds.SnapshotOf(all)
	if err != nil {
		// Every value held decoded when it was received or loaded.
		s.errs.Error("cannot decode a held resource", "err", err)
	}
	return snap
}

// count is the number of resources held; s.mu is held.
func (s *Source) count() int {
	n := 0
	for _, set := range s.held {
		n += len(set)
	}
	return n
}

// Status describes the connection for /readyz: "" when connected and synced.
func (s *Source) Status() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if !s.connected {
		line := "controller " + strings.Join(s.o.Addrs, ",") + " not connected"
		if s.lastErr != "" {
			line += ": " + s.lastErr
		}
		out = append(out, line)
		if !s.loadedAt.IsZero() {
			out = append(out, "answering from the state saved at "+s.loadedAt.Format(time.RFC3339))
		}
	}
	return out
}

// Start connects to the controller and keeps the stream up until ctx ends; Wait waits for
// the goroutines Start started.
func (s *Source) Start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.run(ctx)
	}()
	if s.o.StateDir != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.saveLoop(ctx)
		}()
	}
	return wg.Wait
}

// run streams from the controllers in turn, backing off after each failure.
func (s *Source) run(ctx context.Context) {
	backoff := s.o.MinBackoff
	for i := 0; ctx.Err() == nil; i++ {
		addr := s.o.Addrs[i%len(s.o.Addrs)]
		received, err := s.stream(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		s.setDisconnected(err)
		wait := backoff
		switch code := grpcstatus.Code(err); {
		case received:
			backoff, wait = s.o.MinBackoff, s.o.MinBackoff
		case code == codes.Unauthenticated || code == codes.PermissionDenied:
			wait = max(backoff, refusedBackoff)
			s.errs.Error("the controller refused the agent", "controller", addr, "code", code.String(),
				"err", grpcstatus.Convert(err).Message(), "retry", wait)
		default:
			s.errs.Warn("cannot stream from the controller", "controller", addr, "err", err, "retry", wait)
		}
		s.o.Metrics.disconnected()
		backoff = min(backoff*2, s.o.MaxBackoff)
		// Jitter: agents cut off together do not come back together.
		wait = wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *Source) setDisconnected(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connected = false
	if st, ok := grpcstatus.FromError(err); ok {
		s.lastErr = st.Code().String() + ": " + st.Message()
	} else if err != nil {
		s.lastErr = err.Error()
	}
}

// stream runs one stream until it fails; received reports whether any response came.
func (s *Source) stream(ctx context.Context, addr string) (received bool, err error) {
	creds := insecure.NewCredentials()
	if s.o.TLS != nil {
		creds = credentials.NewTLS(s.o.TLS)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		// Find a dead controller (a node gone without a FIN) within a minute.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// The first response of a type holds every resource of it (100k Services: 21 MB), far
		// over gRPC's default 4 MiB; it is bounded as the saved state of them all is.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxStateBytes))}
	if s.o.TokenFile != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenFile(s.o.TokenFile)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx, grpc.WaitForReady(false))
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	for i, t := range xds.Types {
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: []string{"*"},
			InitialResourceVersions: map[string]string{}}
		if i == 0 {
			req.Node = xds.NodeOf(s.o.NodeID, s.o.Namespace)
		}
		for _, e := range s.held[t] {
			req.InitialResourceVersions[e.name()] = e.version()
		}
		if err := st.Send(req); err != nil {
			s.mu.Unlock()
			return false, err
		}
	}
	s.mu.Unlock()
	first := map[string]bool{} // types whose first response has come
	for {
		resp, err := st.Recv()
		if err != nil {
			if err == io.EOF {
				err = errors.New("the controller closed the stream")
			}
			return received, err
		}
		if !received {
			received = true
			s.mu.Lock()
			s.connected, s.lastErr = true, ""
			s.mu.Unlock()
			s.o.Metrics.connected()
			s.log.Info("streaming from the controller", "controller", addr, "namespace", s.o.Namespace)
		}
		ack := &discovery.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
		if err := s.apply(resp); err != nil {
			// The whole response is refused: the agent keeps what it had, and says why.
			s.errs.Error("rejected an update from the controller", "type", resp.GetTypeUrl(), "err", err)
			s.o.Metrics.rejected()
			ack.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		} else {
			first[resp.GetTypeUrl()] = true
			if len(first) == len(xds.Types) {
				s.markSynced()
			}
		}
		if err := st.Send(ack); err != nil {
			return received, err
		}
	}
}

// apply decodes every resource of resp and, when all decode, replaces the held ones.
func (s *Source) apply(resp *discovery.DeltaDiscoveryResponse) error {
	t := resp.GetTypeUrl()
	decoded := make([]entry, len(resp.GetResources()))
	for i, r := range resp.GetResources() {
		value := r.GetResource().GetValue()
		if _, err := xds.Decode(t, value); err != nil {
			return fmt.Errorf("resource %s: %w", r.GetName(), err)
		}
		e, err := newEntry(r.GetName(), r.GetVersion(), value)
		if err != nil {
			return err
		}
		decoded[i] = e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set, ok := s.held[t]
	if !ok {
		return fmt.Errorf("unknown resource type %q", t)
	}
	s.held[t] = set.apply(decoded, resp.GetRemovedResources())
	s.o.Metrics.received(len(decoded), len(resp.GetRemovedResources()))
	if len(decoded)+len(resp.GetRemovedResources()) > 0 {
		s.signal()
		s.requestSave()
	}
	return nil
}

func (s *Source) markSynced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isSynced {
		s.isSynced = true
		close(s.synced)
		s.signal()
		s.requestSave()
	}
}

func (s *Source) requestSave() {
	select {
	case s.saveNow <- struct{}{}:
	default:
	}
}

// saveLoop writes the held resources to the state file at most once per saveDelay, and
// once more when ctx ends.
func (s *Source) saveLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			select {
			case <-s.saveNow:
				s.save()
			default:
			}
			return
		case <-s.saveNow:
		}
		select {
		case <-ctx.Done():
		case <-time.After(saveDelay):
		}
		s.save()
	}
}

func (s *Source) save() {
	s.mu.Lock()
	if !s.isSynced {
		// A partial set saved would be answered as complete after a restart.
		s.mu.Unlock()
		return
	}
	state := &pb.AgentState{Saved: timestamppb.Now(), Controller: strings.Join(s.o.Addrs, ","), Namespace: s.o.Namespace}
	for t, set := range s.held {
		for _, e := range set {
			state.Resources = append(state.Resources, &pb.SavedResource{TypeUrl: t, Name: e.name(), Version: e.version(), Value: e.value()})
		}
	}
	s.mu.Unlock()
	b, err := proto.Marshal(state)
	if err == nil {
		err = safefile.WriteAtomic(s.path(), b)
	}
	if err != nil {
		s.errs.Error("cannot save the controller's resources; a restart without the controller will not answer cluster names", "err", err)
		s.o.Metrics.saveFailed()
	}
}

func (s *Source) path() string { return filepath.Join(s.o.StateDir, StateFile) }

// load reads the saved state. A missing file is a first start; a state of another namespace
// is not used (it may hold names this namespace may not see); an unreadable one is reported
// and ignored: the controller sends everything again.
func (s *Source) load() error {
	if err := os.MkdirAll(s.o.StateDir, 0o755); err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	b, err := safefile.ReadRegular(s.path(), maxStateBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var state pb.AgentState
	if err == nil {
		err = proto.Unmarshal(b, &state)
	}
	if err == nil && state.GetNamespace() != s.o.Namespace {
		err = fmt.Errorf("saved for namespace %q, not %q", state.GetNamespace(), s.o.Namespace)
	}
	byType := map[string][]entry{}
	for _, r := range state.GetResources() {
		if err != nil {
			break
		}
		if _, err = xds.Decode(r.GetTypeUrl(), r.GetValue()); err == nil {
			var e entry
			if e, err = newEntry(r.GetName(), r.GetVersion(), r.GetValue()); err == nil {
				byType[r.GetTypeUrl()] = append(byType[r.GetTypeUrl()], e)
			}
		}
	}
	held := newHeld()
	for t, entries := range byType {
		held[t] = held[t].apply(entries, nil)
	}
	if err != nil {
		s.log.Error("not using the saved controller state", "file", s.path(), "err", err)
		return nil
	}
	s.held, s.isSynced, s.loadedAt = held, true, state.GetSaved().AsTime()
	close(s.synced)
	s.log.Info("answering from the saved controller state until the controller answers",
		"file", s.path(), "saved", s.loadedAt.Format(time.RFC3339), "resources", len(state.GetResources()))
	return nil
}

// tokenFile sends the token in a file as a bearer token, read for every stream.
type tokenFile string

func (f tokenFile) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	b, err := safefile.ReadRegular(string(f), 64<<10)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return nil, fmt.Errorf("token file %s is empty", string(f))
	}
	return map[string]string{"authorization": "Bearer " + token}, nil
}

func (tokenFile) RequireTransportSecurity() bool { return true }
