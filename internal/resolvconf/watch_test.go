package resolvconf

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	write := func(content string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil { // as DHCP clients replace it
			t.Fatal(err)
		}
	}
	write("nameserver 192.0.2.1\n")
	first, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan Config, 10)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := Watch(ctx, path, first, func(c Config) { changes <- c }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); w.Wait() }()
	next := func() Config {
		select {
		case c := <-changes:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no change reported")
			return Config{}
		}
	}
	write("nameserver 192.0.2.2\nsearch a.example\n")
	if c := next(); len(c.Nameservers) != 1 || c.Nameservers[0] != netip.MustParseAddrPort("192.0.2.2:53") {
		t.Errorf("after the change: %+v", c)
	}
	write("nameserver 192.0.2.2\nsearch a.example\n") // same content: no report
	os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644)
	write("nameserver 192.0.2.3\n")
	if c := next(); c.Nameservers[0] != netip.MustParseAddrPort("192.0.2.3:53") {
		t.Errorf("unchanged content was reported, or the last change was lost: %+v", c)
	}
}

// TestWatchSymlink: a resolv.conf that is a link (as systemd-resolved makes it) is followed
// when its target changes, in place or by rename.
func TestWatchSymlink(t *testing.T) {
	dir := t.TempDir()
	realDir := filepath.Join(dir, "run")
	os.Mkdir(realDir, 0o755)
	target := filepath.Join(realDir, "stub-resolv.conf")
	link := filepath.Join(dir, "resolv.conf")
	os.WriteFile(target, []byte("nameserver 192.0.2.1\n"), 0o644)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	first, _ := ParseFile(link)
	changes := make(chan Config, 10)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := Watch(ctx, link, first, func(c Config) { changes <- c }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); w.Wait() }()
	for i, content := range []string{"nameserver 192.0.2.2\n", "nameserver 192.0.2.3\n"} {
		if i == 0 {
			os.WriteFile(target, []byte(content), 0o644) // in place
		} else {
			os.WriteFile(target+".new", []byte(content), 0o644)
			os.Rename(target+".new", target)
		}
		select {
		case c := <-changes:
			if want := netip.MustParseAddrPort("192.0.2." + string(rune('2'+i)) + ":53"); c.Nameservers[0] != want {
				t.Errorf("change %d: %v, want %v", i, c.Nameservers, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("change %d of the link's target not reported", i)
		}
	}
}
