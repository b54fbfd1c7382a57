#!/usr/bin/env bash
# Prints the directory holding a real kube-apiserver and etcd for the Kubernetes integration
# tests, building them there first when either is missing. They are built from the pinned
# module in test/kube/tools, which keeps their dependencies out of the product's go.mod.
# The directory is $MESHDNS_KUBE_TOOLS, or by default a per-version cache under
# ~/.cache/meshdns-test. Progress goes to stderr; the directory is the only line on stdout.
# A cold build takes several minutes (about 470 CPU-seconds).
set -euo pipefail

# Keep these in step with test/kube/tools/go.mod: they name the cache directory.
kube_version=v1.35.4
etcd_version=v3.6.5

dir="${MESHDNS_KUBE_TOOLS:-$HOME/.cache/meshdns-test/kube-$kube_version-etcd-$etcd_version}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
cd "$(dirname "$0")/.."

log() { echo "kube-tools: $*" >&2; }

have() { [ -x "$dir/kube-apiserver" ] && [ -x "$dir/etcd" ]; }
if have; then
	echo "$dir"
	exit 0
fi

for pin in "k8s.io/kubernetes $kube_version" "go.etcd.io/etcd/server/v3 $etcd_version"; do
	if ! grep -q "^[[:space:]]*$pin\$" test/kube/tools/go.mod; then
		log "test/kube/tools/go.mod does not pin $pin; update the versions in $0"
		exit 1
	fi
done

mkdir -p "$dir"
# Serialise concurrent callers: the second one waits and then finds the binaries built.
if command -v flock >/dev/null; then
	exec 9>"$dir/.lock"
	flock 9
	if have; then
		echo "$dir"
		exit 0
	fi
	# Holding the lock, any temporary output is left over from a build that was killed outright.
	rm -f "$dir"/.*.tmp.*
fi

tmp=""
trap 'if [ -n "$tmp" ]; then rm -f "$tmp"; fi' EXIT

# build NAME PACKAGE [LDFLAGS]: builds into a temporary name and renames it into place, so an
# interrupted build never leaves something that looks cached.
build() {
	local name=$1 pkg=$2 ldflags="-s -w ${3:-}" start=$SECONDS
	[ -x "$dir/$name" ] && return 0
	log "building $name ($pkg) into $dir; this takes a few minutes"
	tmp="$dir/.$name.tmp.$$"
	(cd test/kube/tools && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$tmp" "$pkg") >&2
	mv -f "$tmp" "$dir/$name"
	tmp=""
	log "built $name in $((SECONDS - start))s"
}

# Stamp the version the way Kubernetes' own build does (hack/lib/version.sh), so that
# kube-apiserver --version reports it instead of v0.0.0-master.
kv=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	kv+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitTreeState=clean"
	kv+=" -X $pkg.gitMajor=$(echo "${kube_version#v}" | cut -d. -f1)"
	kv+=" -X $pkg.gitMinor=$(echo "$kube_version" | cut -d. -f2)"
done

build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kv"

echo "$dir"
