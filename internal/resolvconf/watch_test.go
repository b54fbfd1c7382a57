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
