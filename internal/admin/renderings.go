package admin

import (
	"bytes"
	"sync"
)

// renderings keeps the /debug/table answers of one table generation, made on first request:
// a table of thousands of names takes megabytes to render, and a flood of requests must not
// render it once each. Requests that arrive while a view renders wait for it.
type renderings struct {
	mu    sync.Mutex
	gen   uint64
	views [2][]byte // client's view, all
	last  int       // size of the last rendering, to size the next buffer
}

func (r *renderings) get(d TableDump, all bool) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.Generation != r.gen {
		r.gen, r.views = d.Generation, [2][]byte{}
	}
	i := 0
	if all {
		i = 1
	}
	if r.views[i] == nil {
		var buf bytes.Buffer
		buf.Grow(r.last)
		if err := d.Write(&buf, all); err != nil {
			return nil, err
		}
		r.views[i], r.last = buf.Bytes(), buf.Len()
	}
	return r.views[i], nil
}
