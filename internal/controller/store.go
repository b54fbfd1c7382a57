package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sort"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// A store holds the resources of one type for one view (every agent, or the agents of one
// namespace), each marshaled once and shared by every response that carries it. Every change
// takes a revision and is logged, so that an agent's stream finds what changed since its last
// response by reading the log from there: O(changes), not O(resources), per agent and change.
type store struct {
	typeURL string

	mu      sync.RWMutex
	res     map[string]*discovery.Resource // by name; never modified once stored
	rev     uint64                         // of the latest change
	log     []change                       // in revision order, after logBase
	logBase uint64                         // changes up to this revision are no longer logged
	waiters map[chan struct{}]struct{}     // streams to wake after a change
}

type change struct {
	rev  uint64
	name string
}

func newStore(typeURL string) *store {
	return &store{typeURL: typeURL, res: map[string]*discovery.Resource{}, waiters: map[chan struct{}]struct{}{}}
}

// version is a resource's version: a hash of its deterministic encoding, so that replicas
// reading the same object give it the same version and an agent moving between them is sent
// nothing it holds.
func version(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// update stores upd and removes del, and wakes the streams; it returns how many resources
// changed (one whose encoding is unchanged is not a change).
func (s *store) update(upd map[string]proto.Message, del []string) (int, error) {
	type enc struct {
		name string
		r    *discovery.Resource
	}
	encoded := make([]enc, 0, len(upd))
	for name, m := range upd {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return 0, err
		}
		encoded = append(encoded, enc{name, &discovery.Resource{Name: name, Version: version(b),
			Resource: &anypb.Any{TypeUrl: s.typeURL, Value: b}}})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range encoded {
		if old := s.res[e.name]; old != nil && old.GetVersion() == e.r.GetVersion() {
			continue
		}
		s.res[e.name] = e.r
		s.rev++
		s.log = append(s.log, change{s.rev, e.name})
		n++
	}
	for _, name := range del {
		if _, ok := s.res[name]; !ok {
			continue
		}
		delete(s.res, name)
		s.rev++
		s.log = append(s.log, change{s.rev, name})
		n++
	}
	// A log longer than the store is worth no more than a full comparison: streams that far
	// behind compare everything.
	if limit := 2*len(s.res) + 1024; len(s.log) > limit {
		drop := len(s.log) - limit
		s.logBase = s.log[drop-1].rev
		s.log = append([]change(nil), s.log[drop:]...)
	}
	if n > 0 {
		for w := range s.waiters {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
	return n, nil
}

func (s *store) watch(w chan struct{}) {
	s.mu.Lock()
	s.waiters[w] = struct{}{}
	s.mu.Unlock()
}

func (s *store) unwatch(w chan struct{}) {
	s.mu.Lock()
	delete(s.waiters, w)
	s.mu.Unlock()
}

// errBehind is diff's answer to a stream further behind than the log: it must start over.
var errBehind = errors.New("behind the log of changes")

// compare returns what an agent holding known (name to version) lacks, by comparing every
// resource: the resources to send, the names to remove, and the revision that brings it to.
// It is for an agent's first response, which starts from the versions it names.
func (s *store) compare(known map[string]string) (send []*discovery.Resource, remove []string, rev uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for name, r := range s.res {
		if known[name] != r.GetVersion() {
			send = append(send, r)
		}
	}
	for name := range known {
		if _, ok := s.res[name]; !ok {
			remove = append(remove, name)
		}
	}
	return send, remove, s.rev
}

// changes returns what changed after revision since: the resources to send, the names to
// remove, and the revision that brings an agent to. An agent up to date at since lacks
// exactly these, so no agent's versions need to be kept (a removal of a name the agent never
// had is ignored, as the protocol says). It returns errBehind when the log no longer reaches
// back to since.
func (s *store) changes(since uint64) (send []*discovery.Resource, remove []string, rev uint64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if since < s.logBase {
		return nil, nil, 0, errBehind
	}
	i := sort.Search(len(s.log), func(i int) bool { return s.log[i].rev > since })
	seen := map[string]bool{}
	for _, c := range s.log[i:] {
		if seen[c.name] {
			continue
		}
		seen[c.name] = true
		if r := s.res[c.name]; r != nil {
			send = append(send, r)
		} else {
			remove = append(remove, c.name)
		}
	}
	return send, remove, s.rev, nil
}

// watchers is the number of streams reading the store.
func (s *store) watchers() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.waiters)
}
