package resolvconf

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func ns(s string) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(s), 53)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Config
	}{
		{
			name: "empty",
			in:   "",
			want: Config{Ndots: 1},
		},
		{
			name: "kubernetes pod",
			in: "search prod.svc.cluster.local svc.cluster.local cluster.local\n" +
				"nameserver 10.96.0.10\n" +
				"options ndots:5\n",
			want: Config{
				Nameservers: []netip.AddrPort{ns("10.96.0.10")},
				Search:      []string{"prod.svc.cluster.local.", "svc.cluster.local.", "cluster.local."},
				Ndots:       5,
			},
		},
		{
			name: "ipv6 and zone and order kept",
			in:   "nameserver 2001:db8::53\nnameserver fe80::1%eth0\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n",
			want: Config{
				Nameservers: []netip.AddrPort{ns("2001:db8::53"), ns("fe80::1%eth0"), ns("192.0.2.1"), ns("192.0.2.2")},
				Ndots:       1,
			},
		},
		{
			name: "invalid nameservers skipped",
			in:   "nameserver\nnameserver dns.example.com\nnameserver 192.0.2.1:5353\nnameserver 300.1.1.1\nnameserver 192.0.2.9 extra\n",
			want: Config{Nameservers: []netip.AddrPort{ns("192.0.2.9")}, Ndots: 1},
		},
		{
			name: "comments",
			in:   "# nameserver 192.0.2.1\n; search hidden.example\nnameserver 192.0.2.2 # trailing\nsearch a.example;b.example\n  # indented comment\n",
			want: Config{Nameservers: []netip.AddrPort{ns("192.0.2.2")}, Search: []string{"a.example."}, Ndots: 1},
		},
		{
			name: "search lowercased and rooted",
			in:   "search Prod.SVC.Cluster.Local. example.COM\n",
			want: Config{Search: []string{"prod.svc.cluster.local.", "example.com."}, Ndots: 1},
		},
		{
			name: "last search wins",
			in:   "search a.example b.example\nsearch c.example\n",
			want: Config{Search: []string{"c.example."}, Ndots: 1},
		},
		{
			name: "domain after search wins",
			in:   "search a.example b.example\ndomain corp.example\n",
			want: Config{Search: []string{"corp.example."}, Ndots: 1},
		},
		{
			name: "search after domain wins",
			in:   "domain corp.example\nsearch a.example\n",
			want: Config{Search: []string{"a.example."}, Ndots: 1},
		},
		{
			name: "domain takes one name",
			in:   "domain corp.example other.example\n",
			want: Config{Search: []string{"corp.example."}, Ndots: 1},
		},
		{
			name: "invalid search domains dropped",
			in:   "search . a..example -ok.example " + strings.Repeat("x", 64) + ".example bad!.example b.example\n",
			want: Config{Search: []string{"-ok.example.", "b.example."}, Ndots: 1},
		},
		{
			// RFC 4343 folds ASCII only: the Kelvin sign is not 'k', and not a valid letter.
			name: "non-ascii letters are not folded",
			in:   "search \u212a8s.example b.example\n",
			want: Config{Search: []string{"b.example."}, Ndots: 1},
		},
		{
			name: "later search with nothing valid clears",
			in:   "search a.example\nsearch .\n",
			want: Config{Ndots: 1},
		},
		{
			name: "ndots capped",
			in:   "options ndots:42\n",
			want: Config{Ndots: 15},
		},
		{
			name: "ndots zero",
			in:   "options rotate ndots:0 timeout:1\n",
			want: Config{Ndots: 0},
		},
		{
			name: "ndots negative clamps to zero",
			in:   "options ndots:-3\n",
			want: Config{Ndots: 0},
		},
		{
			name: "ndots malformed ignored",
			in:   "options ndots:5\noptions ndots:x ndots: ndots\n",
			want: Config{Ndots: 5},
		},
		{
			name: "last ndots wins",
			in:   "options ndots:2\noptions ndots:3\n",
			want: Config{Ndots: 3},
		},
		{
			name: "unknown keywords and crlf",
			in:   "sortlist 10.0.0.0/8\r\nlookup file bind\r\nnameserver 192.0.2.1\r\nsearch x.example\r\n",
			want: Config{Nameservers: []netip.AddrPort{ns("192.0.2.1")}, Search: []string{"x.example."}, Ndots: 1},
		},
		{
			name: "keywords are case sensitive",
			in:   "NAMESERVER 192.0.2.1\nSearch x.example\n",
			want: Config{Ndots: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseLongLine(t *testing.T) {
	_, err := Parse(strings.NewReader("search " + strings.Repeat("a", 70000) + "\n"))
	if err == nil {
		t.Fatal("Parse of a 70 kB line: want an error, got nil")
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte("nameserver 192.0.2.53\nsearch ns1.svc.cluster.local\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("ok", func(t *testing.T) {
		got, err := ParseFile(path)
		if err != nil {
			t.Fatalf("ParseFile: %v", err)
		}
		want := Config{Nameservers: []netip.AddrPort{ns("192.0.2.53")}, Search: []string{"ns1.svc.cluster.local."}, Ndots: 1}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("/dev/null is an empty resolv.conf", func(t *testing.T) {
		got, err := ParseFile(os.DevNull)
		if want := (Config{Ndots: DefaultNdots}); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseFile(%s) = %+v, %v; want %+v", os.DevNull, got, err, want)
		}
	})
	t.Run("missing file names the path", func(t *testing.T) {
		missing := filepath.Join(dir, "nope.conf")
		_, err := ParseFile(missing)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
		if !strings.Contains(err.Error(), missing) {
			t.Errorf("err %q does not name %s", err, missing)
		}
	})
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"nameserver 10.96.0.10\nsearch prod.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
		"nameserver fe80::1%eth0\ndomain Example.COM.\n",
		"options ndots:99999999999999999999 ndots:-1\n# comment\n; comment\n",
		"search . .. a..b \xff\x00.example\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		if c.Ndots < 0 || c.Ndots > MaxNdots {
			t.Errorf("Ndots %d out of range", c.Ndots)
		}
		for _, ap := range c.Nameservers {
			if !ap.IsValid() || ap.Port() != 53 {
				t.Errorf("bad nameserver %v", ap)
			}
		}
		for _, d := range c.Search {
			if d == "." || !strings.HasSuffix(d, ".") || d != strings.ToLower(d) {
				t.Errorf("bad search domain %q", d)
			}
		}
	})
}

// TestParseFileRefusesNonRegular: --resolv-conf naming a FIFO, or a link to a device, is
// refused at once with an error naming the path and what it is: opening a FIFO must not block
// the start, and /dev/urandom must not be read without end.
func TestParseFileRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.conf")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Should ParseFile wait for a writer after all, this one releases it when the test ends.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	urandom := filepath.Join(dir, "urandom.conf")
	if err := os.Symlink("/dev/urandom", urandom); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{fifo, "resolv.conf " + fifo + " is a FIFO (named pipe), not a regular file"},
		{urandom, "resolv.conf " + urandom + " (a symlink to /dev/urandom) is a character device, not a regular file"},
	}
	for _, tc := range tests {
		done := make(chan error, 1)
		go func() {
			_, err := ParseFile(tc.path)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseFile(%s) = %v, want an error saying %q", tc.path, err, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ParseFile(%s) still blocked after 5s", tc.path)
		}
	}
}

// TestParseFileSizeLimit: a resolv.conf larger than MaxFileBytes is refused, not read.
func TestParseFileSizeLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, MaxFileBytes+1); err != nil { // sparse
		t.Fatal(err)
	}
	_, err := ParseFile(path)
	if want := fmt.Sprintf("resolv.conf %s is larger than %d bytes", path, MaxFileBytes); err == nil || err.Error() != want {
		t.Errorf("ParseFile = %v, want %q", err, want)
	}
}
