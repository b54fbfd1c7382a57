#!/bin/sh
# debug-table-flood.sh [BINARY]: serves a registry of 5,000 services (and their
# EndpointSlices), sends 40 parallel GET /debug/table and prints the answers' status codes and
# the process's resident memory: when ready, and at its peak (VmHWM) after the flood; then
# 40 more, 4 at a time (within the admin request cap).
# Without BINARY, builds ./cmd/meshdns. Loopback only; ports 25353 (DNS) and 25354 (admin).
set -eu
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
bin=${1:-}
if [ -z "$bin" ]; then
	go build -o "$tmp/meshdns" ./cmd/meshdns
	bin=$tmp/meshdns
fi
mkdir "$tmp/registry"
awk 'BEGIN {
	for (i = 0; i < 5000; i++) {
		ns = "ns-" i % 100; a = int(i / 256); b = i % 256
		printf "apiVersion: v1\nkind: Service\nmetadata: {name: svc-%d, namespace: %s}\n", i, ns
		printf "spec: {clusterIP: 10.96.%d.%d, ports: [{name: http, port: 8080, protocol: TCP}]}\n---\n", a, b
		printf "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		printf "metadata: {name: svc-%d-abcde, namespace: %s, labels: {kubernetes.io/service-name: svc-%d}}\n", i, ns, i
		printf "addressType: IPv4\nports: [{name: http, port: 8080, protocol: TCP}]\n"
		printf "endpoints: [{addresses: [10.244.%d.%d], conditions: {ready: true}}]\n---\n", a, b
	}
}' >"$tmp/registry/services.yaml"
"$bin" serve --registry "$tmp/registry" --namespace ns-0 --resolv-conf /dev/null \
	--upstream 127.0.0.2:53 --listen 127.0.0.1:25353 --admin 127.0.0.1:25354 2>"$tmp/log" &
pid=$!
admin=http://127.0.0.1:25354
i=0
until curl -sf -o /dev/null "$admin/readyz"; do
	i=$((i + 1))
	[ $i -lt 200 ] || { cat "$tmp/log"; exit 1; }
	sleep 0.05
done
rss() { awk -v k="$1:" '$1 == k {print $2 / 1024 " MiB"}' "/proc/$pid/status"; }
echo "ready: VmRSS $(rss VmRSS), VmHWM $(rss VmHWM)"
seq 40 | xargs -P 40 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$admin/debug/table" | sort | uniq -c
echo "after 40 parallel /debug/table: VmRSS $(rss VmRSS), VmHWM $(rss VmHWM)"
seq 40 | xargs -P 4 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$admin/debug/table" | sort | uniq -c
echo "after 40 more, 4 at a time: VmRSS $(rss VmRSS), VmHWM $(rss VmHWM)"
