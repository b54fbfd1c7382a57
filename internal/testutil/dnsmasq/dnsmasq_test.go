package dnsmasq

import (
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestStart(t *testing.T) {
	addr := Start(t, "--address=/a.test/192.0.2.10")
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c := &dns.Client{Net: network, Timeout: 2 * time.Second}
			resp, _, err := c.Exchange(new(dns.Msg).SetQuestion("a.test.", dns.TypeA), addr.String())
			if err != nil {
				t.Fatalf("exchange with %s: %v", addr, err)
			}
			if len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
				t.Errorf("answer = %v, want a.test. A 192.0.2.10", resp.Answer)
			}
		})
	}
}

func TestStartBadArgsFails(t *testing.T) {
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(ft, "--no-such-option")
	}()
	<-done
	if !ft.failed {
		t.Fatal("Start with a bad option did not fail the test")
	}
}

// fatalRecorder turns Fatalf into a recorded failure plus runtime.Goexit, as testing does.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed = true
	f.TB.Logf("(expected) "+format, args...)
	runtime.Goexit()
}
