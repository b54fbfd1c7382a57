package main

import (
	"bufio"
	"fmt"
	"path/filepath"
	"strings"
)

// writeRegistry writes the manifests meshdns reads: namespaces, services, headless services
// with their EndpointSlices, and ServiceEntries, one file each.
func (w *workload) writeRegistry() error {
	files := map[string]func(*bufio.Writer){
		"namespaces.yaml":     writeNamespaces,
		"services.yaml":       writeServices,
		"headless.yaml":       writeHeadless,
		"serviceentries.yaml": writeServiceEntries,
	}
	for name, fill := range files {
		if err := writeFile(filepath.Join(w.registryDir, name), fill); err != nil {
			return err
		}
	}
	return nil
}

func writeNamespaces(b *bufio.Writer) {
	for i := range namespaceCount + 1 {
		ns := fmt.Sprintf("ns-%d", i)
		if i == namespaceCount {
			ns = clientNamespace
		}
		fmt.Fprintf(b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n---\n", ns)
	}
}

func writeServices(b *bufio.Writer) {
	for i := range serviceCount {
		name, ns, _ := strings.Cut(serviceName(i), ".")
		fmt.Fprintf(b, "apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\n", name, ns)
		fmt.Fprintf(b, "spec: {clusterIP: %s, ports: [{name: http, port: 80, protocol: TCP}]}\n---\n",
			nth(serviceBase, i))
	}
}

func writeHeadless(b *bufio.Writer) {
	for i := range headlessCount {
		name, ns, _ := strings.Cut(headlessName(i), ".")
		fmt.Fprintf(b, "apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\n", name, ns)
		fmt.Fprintf(b, "spec: {clusterIP: None, ports: [{name: http, port: 8080, protocol: TCP}]}\n---\n")
		fmt.Fprintf(b, "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n")
		fmt.Fprintf(b, "metadata: {name: %s-x1, namespace: %s, labels: {kubernetes.io/service-name: %s}}\n",
			name, ns, name)
		fmt.Fprintf(b, "addressType: IPv4\nports: [{name: http, port: 8080, protocol: TCP}]\nendpoints:\n")
		for ep := range endpointsPerSlice {
			fmt.Fprintf(b, "  - {addresses: [%s], conditions: {ready: true}}\n", endpointAddr(i, ep))
		}
		fmt.Fprintf(b, "---\n")
	}
}

func writeServiceEntries(b *bufio.Writer) {
	for i := range entryCount {
		fmt.Fprintf(b, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n")
		fmt.Fprintf(b, "metadata: {name: se-%d, namespace: ns-%d}\n", i, i%namespaceCount)
		fmt.Fprintf(b, "spec: {hosts: [%s], addresses: [%s], ports: [{number: 443, name: https, protocol: TLS}], "+
			"location: MESH_EXTERNAL, resolution: DNS}\n---\n", entryHost(i), nth(entryBase, i))
	}
}

// writeZones writes CoreDNS's equivalent of the registry: the A records of every name meshdns
// answers from it (services, headless services and their endpoints' names, ServiceEntry
// hosts), with meshdns's TTL and SOA. SRV and PTR records are left out: no scenario asks them.
// The services alone also go into a hosts file for the dnsmasq reference.
func (w *workload) writeZones() error {
	err := writeFile(w.clusterZone, func(b *bufio.Writer) {
		writeZoneHeader(b, clusterDomain)
		for i := range serviceCount {
			fmt.Fprintf(b, "%s.svc IN A %s\n", serviceName(i), nth(serviceBase, i))
		}
		for i := range headlessCount {
			for ep := range endpointsPerSlice {
				addr := endpointAddr(i, ep)
				fmt.Fprintf(b, "%s.svc IN A %s\n", headlessName(i), addr)
				dashed := strings.ReplaceAll(addr.String(), ".", "-")
				fmt.Fprintf(b, "%s.%s.svc IN A %s\n", dashed, headlessName(i), addr)
			}
		}
	})
	if err != nil {
		return err
	}
	err = writeFile(w.hitHosts, func(b *bufio.Writer) {
		for i := range serviceCount {
			fmt.Fprintf(b, "%s %s\n", nth(serviceBase, i), clusterFQDN(serviceName(i)))
		}
	})
	if err != nil {
		return err
	}
	return writeFile(w.entryZone, func(b *bufio.Writer) {
		writeZoneHeader(b, entryDomain)
		for i := range entryCount {
			fmt.Fprintf(b, "%s. IN A %s\n", entryHost(i), nth(entryBase, i))
		}
	})
}

// writeZoneHeader writes $ORIGIN, $TTL and an SOA like meshdns's (negative TTL = local TTL).
// The zone has no NS records: the file plugin would add them to the authority section of
// every answer, which meshdns does not.
func writeZoneHeader(b *bufio.Writer, zone string) {
	fmt.Fprintf(b, "$ORIGIN %s.\n$TTL %d\n", zone, localTTL)
	fmt.Fprintf(b, "@ IN SOA ns.dns.%s. hostmaster.%s. 1 7200 1800 86400 %d\n", zone, zone, localTTL)
}
