package resolvconf

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
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

// TestWatchDirectoryRecreated: the directory of resolv.conf, or of its link's target (as
// systemd-resolved's /run/systemd/resolve), removed and made again is watched again: the
// nameservers of the new file are reported.
func TestWatchDirectoryRecreated(t *testing.T) {
	for _, tc := range []struct {
		name string
		link bool // resolv.conf is a link into the removed directory
	}{{name: "directory of the file"}, {name: "directory of the link's target", link: true}} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "run", "resolve")
			file := filepath.Join(dir, "resolv.conf")
			path := file
			if tc.link {
				path = filepath.Join(root, "resolv.conf")
			}
			writeResolvConf(t, file, "nameserver 192.0.2.1\n")
			if tc.link {
				if err := os.Symlink(file, path); err != nil {
					t.Fatal(err)
				}
			}
			first, err := ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			logs := &testutil.SyncBuffer{}
			changes := make(chan Config, 10)
			ctx, cancel := context.WithCancel(context.Background())
			w, err := Watch(ctx, path, first, func(c Config) { changes <- c }, slog.New(slog.NewTextHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); w.Wait() }()
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			// Made again only once the watcher has seen it gone: two separate changes.
			for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "re-reading resolv.conf failed"); {
				if time.Now().After(deadline) {
					t.Fatalf("the removal of %s was not noticed\n%s", dir, logs)
				}
				time.Sleep(10 * time.Millisecond)
			}
			writeResolvConf(t, file, "nameserver 192.0.2.2\n")
			select {
			case c := <-changes:
				if want := netip.MustParseAddrPort("192.0.2.2:53"); len(c.Nameservers) != 1 || c.Nameservers[0] != want {
					t.Errorf("after re-creation: %v, want %v", c.Nameservers, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the file of the re-created directory was not read\n%s", logs)
			}
		})
	}
}

func writeResolvConf(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
