package vipfwd

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// copyChunk is how much one io.Copy moves before the idle deadline is pushed on: small enough
// that a busy connection is never mistaken for an idle one, large enough that the deadline
// costs nothing next to the splice that moves the bytes (io.Copy of a *net.TCPConn from an
// io.LimitedReader of one still splices).
const copyChunk = 1 << 20

// pipe copies client and target both ways until each side has ended, propagating a half
// close; the connections are closed when both directions are done, on an error, or when no
// byte moved either way for the idle timeout.
func (f *Forwarder) pipe(client, target *net.TCPConn) {
	p := &pipe{idle: f.opts.IdleTimeout}
	p.touch()
	f.mu.Lock()
	f.conns[target] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.untrack(target)
		client.Close()
		target.Close()
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.opts.Metrics.copied(false, p.half(client, target))
	}()
	f.opts.Metrics.copied(true, p.half(target, client))
	wg.Wait()
}

type pipe struct {
	idle time.Duration
	last atomic.Int64 // unix nanoseconds of the latest bytes moved either way
	once sync.Once
}

func (p *pipe) touch() { p.last.Store(time.Now().UnixNano()) }

// quiet reports whether no bytes moved either way for the idle timeout.
func (p *pipe) quiet() bool { return time.Since(time.Unix(0, p.last.Load())) >= p.idle }

// half copies src to dst until src ends, then half-closes dst (the peer reads EOF, and may
// still answer). An error or an idle pipe closes both connections, which ends the other half
// too. It returns the bytes copied.
func (p *pipe) half(dst, src *net.TCPConn) int64 {
	var total int64
	chunk := &io.LimitedReader{R: src}
	for {
		// Only reads have a deadline: a write timing out could lose bytes already spliced
		// out of src; a writer stuck on a peer that does not read is ended by the other
		// half, once the pipe is quiet.
		src.SetReadDeadline(time.Now().Add(p.idle))
		chunk.N = copyChunk
		n, err := io.Copy(dst, chunk)
		total += n
		if n > 0 {
			p.touch()
		}
		switch {
		case err == nil && n < copyChunk: // src ended
			dst.CloseWrite()
			return total
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && !p.quiet():
		default:
			p.once.Do(func() { src.Close(); dst.Close() })
			return total
		}
	}
}
