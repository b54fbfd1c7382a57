#!/usr/bin/env bash
# Runs the whole meshdns test suite on a Debian machine with Go, installing what the tests
# need first: DNS clients (dig, kdig), real upstream resolvers (dnsmasq, unbound), and iproute2,
# iptables and nftables for the network namespaces in which glibc's resolver and capture are
# tested (those tests need root), and a kube-apiserver and etcd built from source.
set -euo pipefail
cd "$(dirname "$0")/.."

# The network-namespace and capture tests need root: run everything as root, keeping the
# environment (Go, CI=true) as it is.
if [ "$(id -u)" != 0 ]; then
	exec sudo --preserve-env env "PATH=$PATH" "$0" "$@"
fi

export PATH="$PATH:/usr/sbin:/sbin"
need=()
command -v dig >/dev/null || need+=(dnsutils)
command -v kdig >/dev/null || need+=(knot-dnsutils)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v ip >/dev/null || need+=(iproute2)
command -v unbound >/dev/null || need+=(unbound)
command -v iptables-legacy >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
if ((${#need[@]})); then
	echo "installing test prerequisites: ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

go vet ./...
# The agents' build (-tags nokube, the image's /meshdns-agent) leaves files out and puts others in.
go vet -tags nokube ./cmd/meshdns

# Fuzz what comes from outside for a bounded number of inputs; crashers found are kept in
# testdata/fuzz and then run as regular cases by go test. A count rather than a duration: a
# duration ends with a deadline that a busy machine's fuzz workers can miss, failing the run
# for no fault of the code.
fuzz() { go test -run='^$' -fuzz="^$1\$" -fuzztime="${FUZZTIME:-50000x}" "$2"; }
fuzz FuzzHandle ./internal/server
fuzz FuzzParseQuery ./internal/server
fuzz FuzzParseFile ./internal/manifest
fuzz FuzzParse ./internal/resolvconf
fuzz FuzzParseReply ./internal/upstream
fuzz FuzzHandler ./internal/inject

go test -race -count=1 ./...

# The container image, built twice by scripts/image.sh and taken apart. Its writer is a module
# of its own so that go-containerregistry stays out of the product's go.mod. A cold Go build
# cache makes the first image build compile meshdns for amd64 and arm64 (several minutes).
(cd build/image && go vet ./... && go test -count=1 -timeout 30m ./...)

# Kubernetes source and the Helm chart against a real kube-apiserver and etcd (built once by
# scripts/kube-tools.sh and cached; the first build takes several minutes), with a helm built
# and cached the same way by scripts/helm-tool.sh. The tests live in their own module so that
# the product's go.mod stays free of envtest and the API server.
(cd test/kube && go vet ./... && go test -count=1 ./...)
