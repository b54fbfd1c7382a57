package resolver

import (
	"context"

	"github.com/miekg/dns"
)

// Resolve is Query without the reuse fields, for tests that check the response alone.
func (r *Resolver) Resolve(ctx context.Context, req *dns.Msg, c Client) (*dns.Msg, Result) {
	rep := r.Query(ctx, req, c)
	return rep.Msg, rep.Result
}

// Wait blocks until the background refreshes started so far have finished.
func (r *Resolver) Wait() { r.bg.Wait() }
