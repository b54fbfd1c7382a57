package table

import (
	"strings"
	"testing"
)

// TestNameChunksKeepNames: names made one after the other into a chunk, past its end into the
// next, and one too long to share a chunk, read back as made, lowercased when asked, after
// every later name was written.
func TestNameChunksKeepNames(t *testing.T) {
	var a nameChunks
	long := strings.Repeat("Ab", chunkBytes/4)
	want := map[int]string{}
	var got []string
	for i := range 3000 { // about 40 bytes each: past the first chunk
		got = append(got, a.concat(i%2 == 0, "Svc-", strings.Repeat("X", i%7), ".NS.svc.cluster.local."))
		w := "Svc-" + strings.Repeat("X", i%7) + ".NS.svc.cluster.local."
		if i%2 == 0 {
			w = strings.ToLower(w)
		}
		want[i] = w
	}
	got = append(got, a.concat(true, long), a.concat(false, "", ""))
	want[3000], want[3001] = strings.ToLower(long), ""
	for i, g := range got {
		if g != want[i] {
			t.Fatalf("name %d reads %.40q, want %.40q", i, g, want[i])
		}
	}
}
