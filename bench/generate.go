package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
)

// The generated mesh. Every number that shapes the workload is here.
const (
	serviceCount      = 10_000 // ClusterIP Services svc-N
	headlessCount     = 500    // headless Services hl-N, each with endpointsPerSlice endpoints
	endpointsPerSlice = 3
	entryCount        = 500 // ServiceEntries se-N.corp.example.org with an address
	externalCount     = 300 // names ext-N.example.com that only the upstream knows
	nxdomainCount     = 10_000
	namespaceCount    = 4       // services live in ns-0 .. ns-3
	clientNamespace   = "bench" // the namespace meshdns answers for (autopath)
	clusterDomain     = "cluster.local"
	entryDomain       = "corp.example.org"
	externalDomain    = "example.com"
	localTTL          = 30 // meshdns --ttl default; the zone files use the same
	seed              = 7  // query files are shuffled deterministically
)

var (
	serviceBase  = netip.MustParseAddr("10.96.0.10")
	endpointBase = netip.MustParseAddr("10.244.0.10")
	entryBase    = netip.MustParseAddr("100.64.0.10")
	externalBase = netip.MustParseAddr("198.18.0.10")
)

// workload is what generate wrote: the registry for meshdns, the zone files for CoreDNS, the
// client's resolv.conf (search list for both servers' autopath) and one dnsperf query file per
// query set.
type workload struct {
	dir         string
	registryDir string
	resolvConf  string
	clusterZone string
	entryZone   string
	hitHosts    string            // the services' A records as a hosts file, for the dnsmasq reference
	queries     map[string]string // query set name -> dnsperf file
	externals   []string          // names the upstream answers, primed into both caches
}

// generate writes the workload below dir.
func generate(dir string) (*workload, error) {
	w := &workload{
		dir:         dir,
		registryDir: filepath.Join(dir, "registry"),
		resolvConf:  filepath.Join(dir, "resolv.conf"),
		clusterZone: filepath.Join(dir, "db.cluster.local"),
		entryZone:   filepath.Join(dir, "db."+entryDomain),
		hitHosts:    filepath.Join(dir, "services.hosts"),
		queries:     map[string]string{},
	}
	for i := range externalCount {
		w.externals = append(w.externals, externalName(i))
	}
	if err := os.MkdirAll(w.registryDir, 0o755); err != nil {
		return nil, err
	}
	steps := []func() error{w.writeRegistry, w.writeZones, w.writeResolvConf, w.writeQueries}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("generating the workload in %s: %w", dir, err)
		}
	}
	return w, nil
}

func serviceName(i int) string  { return fmt.Sprintf("svc-%d.ns-%d", i, i%namespaceCount) }
func headlessName(i int) string { return fmt.Sprintf("hl-%d.ns-%d", i, i%namespaceCount) }
func entryHost(i int) string    { return fmt.Sprintf("se-%d.%s", i, entryDomain) }
func externalName(i int) string { return fmt.Sprintf("ext-%d.%s", i, externalDomain) }

// clusterFQDN is a name of the cluster zone without the trailing dot: "svc-1.ns-1.svc.cluster.local".
func clusterFQDN(short string) string { return short + ".svc." + clusterDomain }

// nth returns base + n (IPv4, no overflow checks: the counts above stay far from it).
func nth(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func endpointAddr(svc, ep int) netip.Addr { return nth(endpointBase, svc*endpointsPerSlice+ep) }

// writeFile creates path and lets fill write it through a buffer.
func writeFile(path string, fill func(w *bufio.Writer)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	fill(bw)
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

func (w *workload) writeResolvConf() error {
	return writeFile(w.resolvConf, func(b *bufio.Writer) {
		// The nameserver line is never used: meshdns gets --upstream, CoreDNS reads only the
		// search list from this file.
		fmt.Fprintf(b, "nameserver 127.0.0.1\nsearch %s.svc.%s svc.%s %s\noptions ndots:5\n",
			clientNamespace, clusterDomain, clusterDomain, clusterDomain)
	})
}

// shuffled returns lines in a deterministic random order.
func shuffled(lines []string) []string {
	r := rand.New(rand.NewPCG(seed, seed))
	r.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	return lines
}

// Query sets, one dnsperf file each (dnsperf loops over a file until its time is up).
const (
	setHit      = "hit"      // A of a ClusterIP service's full name
	setAutopath = "autopath" // the first search-list query for another namespace's service
	setExternal = "external" // A of a name only the upstream knows (cached)
	setNXDomain = "nxdomain" // a name of the cluster zone that does not exist
	setMix      = "mix"      // 60% hit, 20% autopath, 15% external, 5% nxdomain
)

// mixShares is the mix per 20 queries.
var mixShares = []struct {
	set   string
	count int
}{{setHit, 12}, {setAutopath, 4}, {setExternal, 3}, {setNXDomain, 1}}

// querySets returns the dnsperf lines ("name A") of every set except the mix.
func querySets() map[string][]string {
	sets := map[string][]string{}
	for i := range serviceCount {
		sets[setHit] = append(sets[setHit], clusterFQDN(serviceName(i))+" A")
		autopath := serviceName(i) + "." + clusterFQDN(clientNamespace)
		sets[setAutopath] = append(sets[setAutopath], autopath+" A")
	}
	for i := range externalCount {
		sets[setExternal] = append(sets[setExternal], externalName(i)+" A")
	}
	for i := range nxdomainCount {
		nx := clusterFQDN(fmt.Sprintf("nx-%d.ns-%d", i, i%namespaceCount))
		sets[setNXDomain] = append(sets[setNXDomain], nx+" A")
	}
	for name, lines := range sets {
		sets[name] = shuffled(lines)
	}
	return sets
}

// mixLines draws from the other sets in the proportions of mixShares, cycling through each.
func mixLines(sets map[string][]string) []string {
	const blocks = 1_000
	var lines []string
	next := map[string]int{}
	for range blocks {
		for _, share := range mixShares {
			src := sets[share.set]
			for range share.count {
				lines = append(lines, src[next[share.set]%len(src)])
				next[share.set]++
			}
		}
	}
	return shuffled(lines)
}

func (w *workload) writeQueries() error {
	sets := querySets()
	sets[setMix] = mixLines(sets)
	for name, lines := range sets {
		path := filepath.Join(w.dir, "queries-"+name+".txt")
		err := writeFile(path, func(b *bufio.Writer) {
			for _, line := range lines {
				b.WriteString(line)
				b.WriteByte('\n')
			}
		})
		if err != nil {
			return err
		}
		w.queries[name] = path
	}
	return nil
}
