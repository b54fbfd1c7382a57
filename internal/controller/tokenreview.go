package controller

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/rest"

	"github.com/meshdns/meshdns/internal/kubeapi"
)

// DefaultAudience is the audience agents' tokens are requested for (a projected
// serviceAccountToken volume's audience): a token for the API server itself is refused, so a
// stolen controller token cannot be replayed against the API server, nor the reverse.
const DefaultAudience = "meshdns"

// Verdicts are remembered this long: a reconnection storm of thousands of agents after a
// controller restart costs the API server one TokenReview per token, not per attempt.
const (
	reviewTTL     = time.Minute
	maxRemembered = 100_000
)

// TokenReviewer authenticates tokens with the API server's TokenReview.
type TokenReviewer struct {
	client   rest.Interface // authentication.k8s.io/v1
	audience string
	now      func() time.Time

	mu      sync.Mutex
	verdict map[[32]byte]review
}

type review struct {
	account ServiceAccount
	err     error // rejected
	until   time.Time
}

// NewTokenReviewer returns a TokenReviewer using cfg; audience "" means DefaultAudience.
func NewTokenReviewer(cfg *rest.Config, audience string) (*TokenReviewer, error) {
	c, err := kubeapi.NewClient(cfg, kubeapi.Authentication)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if audience == "" {
		audience = DefaultAudience
	}
	return &TokenReviewer{client: c, audience: audience, now: time.Now, verdict: map[[32]byte]review{}}, nil
}

// Authenticate returns the service account token belongs to.
func (r *TokenReviewer) Authenticate(ctx context.Context, token string) (ServiceAccount, error) {
	key := sha256.Sum256([]byte(token))
	now := r.now()
	r.mu.Lock()
	v, ok := r.verdict[key]
	r.mu.Unlock()
	if ok && now.Before(v.until) {
		return v.account, v.err
	}
	sa, err := r.review(ctx, token)
	if err != nil && !errors.Is(err, ErrRejected) {
		return ServiceAccount{}, err // not a verdict: ask again next time
	}
	r.mu.Lock()
	if len(r.verdict) >= maxRemembered {
		for k, v := range r.verdict {
			if !now.Before(v.until) {
				delete(r.verdict, k)
			}
		}
		if len(r.verdict) >= maxRemembered {
			clear(r.verdict)
		}
	}
	r.verdict[key] = review{account: sa, err: err, until: now.Add(reviewTTL)}
	r.mu.Unlock()
	return sa, err
}

func (r *TokenReviewer) review(ctx context.Context, token string) (ServiceAccount, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var res authv1.TokenReview
	err := r.client.Post().Resource("tokenreviews").
		Body(&authv1.TokenReview{Spec: authv1.TokenReviewSpec{Token: token, Audiences: []string{r.audience}}}).Do(ctx).Into(&res)
	if err != nil {
		return ServiceAccount{}, fmt.Errorf("TokenReview: %w", err)
	}
	st := res.Status
	if !st.Authenticated {
		reason := st.Error
		if reason == "" {
			reason = "not authenticated"
		}
		return ServiceAccount{}, fmt.Errorf("%w: %s", ErrRejected, reason)
	}
	if !slices.Contains(st.Audiences, r.audience) {
		return ServiceAccount{}, fmt.Errorf("%w: not a token for audience %q", ErrRejected, r.audience)
	}
	// system:serviceaccount:<namespace>:<name>
	parts := strings.Split(st.User.Username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" || parts[2] == "" || parts[3] == "" {
		return ServiceAccount{}, fmt.Errorf("%w: %q is not a service account", ErrRejected, st.User.Username)
	}
	return ServiceAccount{Namespace: parts[2], Name: parts[3]}, nil
}
