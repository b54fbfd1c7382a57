package vip

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
)

func sampleState(t *testing.T) State {
	t.Helper()
	clk := testutil.NewClock()
	a := newTest(t, "240.240.0.0/16", "2001:2::/48", clk)
	a.Allocate(claims("shop/db.example.com", "shop/cache.example.com", "dev/db.example.com"))
	clk.Advance(time.Minute)
	a.Allocate(claims("shop/db.example.com", "dev/db.example.com"))
	return a.State()
}

func TestFileStore(t *testing.T) {
	tests := []struct {
		name    string
		file    string // content written before Load; "-" for no file
		want    State
		wantErr string
	}{
		{name: "missing file is an empty state", file: "-"},
		{name: "empty file is corrupt", file: "", wantErr: "corrupt"},
		{name: "truncated JSON is corrupt", file: `{"version": 1, "leases": [`, wantErr: "corrupt"},
		{name: "wrong types are corrupt", file: `{"version": 1, "leases": [{"address": "not-an-ip"}]}`,
			wantErr: "corrupt"},
		{name: "unknown family is corrupt", file: `{"version": 1, "leases": [{"family": "ipx"}]}`,
			wantErr: "corrupt"},
		{name: "unknown version", file: `{"version": 7}`, wantErr: "version 7, want 1"},
		{name: "no version", file: `{"leases": []}`, wantErr: "version 0, want 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := NewFileStore(dir)
			if tc.file != "-" {
				if err := os.WriteFile(s.Path(), []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Load()
			if tc.wantErr == "" {
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Load = %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), s.Path()) {
				t.Fatalf("Load error = %v, want one naming %s and saying %q", err, s.Path(), tc.wantErr)
			}
			if !reflect.DeepEqual(got, State{}) {
				t.Errorf("Load returned %+v with its error, want an empty State", got)
			}
		})
	}
}

func TestFileStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := NewFileStore(dir)
	want := sampleState(t)
	if len(want.Leases) != 4 || len(want.Released) != 2 {
		t.Fatalf("setup: %+v", want)
	}
	for range 2 { // the second Save replaces the first
		if err := s.Save(want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != StateFile {
		t.Errorf("directory holds %v, want only %s (no temp file left)", entries, StateFile)
	}
	if fi, _ := os.Stat(s.Path()); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
}

func TestFileStoreIsHumanReadable(t *testing.T) {
	dir := t.TempDir()
	s := NewFileStore(dir)
	if err := s.Save(sampleState(t)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(s.Path())
	want := `{
  "version": 1,
  "leases": [
    {
      "namespace": "dev",
      "host": "db.example.com",
      "family": "ipv4",
      "address": "240.240.40.169",
      "since": "2026-01-02T03:04:05Z"
    },
`
	if !strings.HasPrefix(string(b), want) {
		t.Errorf("state file starts\n%s\nwant\n%s", b[:min(len(b), 400)], want)
	}
	for _, field := range []string{`"released": [`, `"releasedAt": "2026-01-02T03:05:05Z"`, `"family": "ipv6"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("state file lacks %s", field)
		}
	}
}

func TestFileStoreSaveFailsCleanly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	err := NewFileStore(dir).Save(State{Version: StateVersion})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, StateFile)) {
		t.Fatalf("Save into a missing directory: %v, want an error naming the file", err)
	}
}
