package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
)

const (
	startTimeout  = 60 * time.Second // from exec to the first good answer
	startAttempts = 3                // another process may take the free port we picked
)

// server is a DNS server under test: how to run it on an address.
type server struct {
	name string
	argv func(addr netip.AddrPort) []string
	// ready is the name whose answer (NOERROR with records) means the server is serving.
	ready string
}

// meshdnsServer serves the registry; unknown names go to the upstream through its cache.
func meshdnsServer(bin string, w *workload, upstream netip.AddrPort) server {
	return server{name: "meshdns", ready: clusterFQDN(serviceName(0)), argv: func(addr netip.AddrPort) []string {
		return []string{bin, "serve", "--registry", w.registryDir, "--listen", addr.String(), "--admin", "",
			"--upstream", upstream.String(), "--namespace", clientNamespace, "--resolv-conf", w.resolvConf,
			"--log-level", "warn"}
	}}
}

// corednsServer serves the same names from zone files, with autopath on the same search list.
func corednsServer(bin, corefile string) server {
	return server{name: "CoreDNS", ready: clusterFQDN(serviceName(0)), argv: func(addr netip.AddrPort) []string {
		return []string{bin, "-conf", corefile, "-dns.port", strconv.Itoa(int(addr.Port())), "-quiet"}
	}}
}

// corednsCacheCapacity lets CoreDNS's caches hold every name of the workload (its default,
// 9984 per kind, would evict part of the 10,000 services).
const corednsCacheCapacity = 100_000

// writeCorefile writes the CoreDNS configuration: the cluster zone with autopath (the search
// list of the client's resolv.conf: autopath needs the kubernetes plugin only for per-pod
// search lists), the ServiceEntry hosts' zone, and everything else forwarded to the upstream;
// each with a cache in front.
func writeCorefile(w *workload, upstream netip.AddrPort) (string, error) {
	cache := fmt.Sprintf("cache %d {\n\t\tsuccess %d\n\t\tdenial %d\n\t}", localTTL,
		corednsCacheCapacity, corednsCacheCapacity)
	corefile := fmt.Sprintf(`%s {
	bind 127.0.0.1
	autopath %s
	file %s
	%s
}
%s {
	bind 127.0.0.1
	file %s
	%s
}
. {
	bind 127.0.0.1
	forward . %s
	cache
}
`, clusterDomain, w.resolvConf, w.clusterZone, cache, entryDomain, w.entryZone, cache, upstream)
	path := filepath.Join(w.dir, "Corefile")
	if err := os.WriteFile(path, []byte(corefile), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

// upstreamServer is the dnsmasq both servers forward to: it knows the external names (TTL
// 3600, so they stay cached) and nothing else.
func upstreamServer(bin string, w *workload) server {
	args := []string{"--local-ttl=3600", "--local=/" + externalDomain + "/"}
	for i, name := range w.externals {
		args = append(args, fmt.Sprintf("--host-record=%s,%s", name, nth(externalBase, i)))
	}
	return dnsmasqServer("upstream", bin, w.externals[0], args...)
}

// referenceServer is a dnsmasq answering the hit names from a hosts file: a small C server
// that shows what this machine and dnsperf can measure at all.
func referenceServer(bin string, w *workload) server {
	return dnsmasqServer("dnsmasq", bin, clusterFQDN(serviceName(0)), "--addn-hosts="+w.hitHosts,
		fmt.Sprintf("--local-ttl=%d", localTTL), "--local=/"+clusterDomain+"/")
}

// dnsmasqServer runs dnsmasq in the foreground with no configuration but args.
func dnsmasqServer(name, bin, ready string, args ...string) server {
	return server{name: name, ready: ready, argv: func(addr netip.AddrPort) []string {
		argv := []string{bin, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
			"--bind-interfaces", "--listen-address=" + addr.Addr().String(), "--port=" + strconv.Itoa(int(addr.Port())),
			"--pid-file=", "--log-facility=-"}
		if os.Geteuid() == 0 {
			argv = append(argv, "--user=root") // otherwise dnsmasq drops to nobody
		}
		return append(argv, args...)
	}}
}

// running is a started server and its address.
type running struct {
	*process
	addr netip.AddrPort
}

// start runs s on a free loopback port on the CPUs of cpus and waits until it answers.
func (s server) start(ctx context.Context, cpus, logDir string) (*running, error) {
	var lastErr error
	for range startAttempts {
		addr, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		logPath := filepath.Join(logDir, fmt.Sprintf("%s-%s.log", s.name, time.Now().Format("150405.000000")))
		p, err := startProcess(ctx, s.name, cpus, logPath, s.argv(addr)...)
		if err != nil {
			return nil, err
		}
		if lastErr = waitReady(ctx, p, addr, s.ready); lastErr == nil {
			return &running{process: p, addr: addr}, nil
		}
		p.stop()
		lastErr = p.failure(lastErr)
	}
	return nil, lastErr
}

// waitReady polls addr until the ready name has records, the process exits or time is up.
func waitReady(ctx context.Context, p *process, addr netip.AddrPort, name string) error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if !p.running() {
			return errors.New("exited before answering")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := query(addr, name, 200*time.Millisecond)
		if err == nil && r.rcode == 0 && len(r.answer) > 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s has no answer for %s within %s", addr, name, startTimeout)
}

// freePort returns a 127.0.0.1 port that is free for both UDP and TCP right now.
func freePort() (netip.AddrPort, error) { return testutil.FreePort() }
