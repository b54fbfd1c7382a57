#!/usr/bin/env bash
# Prints the path of the helm binary the chart tests use (deploy/helm/meshdns), building it
# there first when it is missing. It is built from the pinned helm.sh/helm/v4 module in
# test/helm/tools, which keeps helm's dependencies out of the product's go.mod and the test
# module's. The binary lives in $MESHDNS_HELM_TOOL, or by default in a per-version cache under
# ~/.cache/meshdns-test. Progress goes to stderr; the path is the only line on stdout.
# A cold build takes a few minutes.
set -euo pipefail

# Keep this in step with test/helm/tools/go.mod: it names the cache directory and the version
# helm reports.
helm_version=v4.3.2

dir="${MESHDNS_HELM_TOOL:-$HOME/.cache/meshdns-test/helm-$helm_version}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
cd "$(dirname "$0")/.."

log() { echo "helm-tool: $*" >&2; }

if [ -x "$dir/helm" ]; then
	echo "$dir/helm"
	exit 0
fi

if ! grep -q "^require helm.sh/helm/v4 $helm_version\$" test/helm/tools/go.mod; then
	log "test/helm/tools/go.mod does not pin helm.sh/helm/v4 $helm_version; update the version in $0"
	exit 1
fi

mkdir -p "$dir"
# Serialise concurrent callers: the second one waits and then finds the binary built.
if command -v flock >/dev/null; then
	exec 9>"$dir/.lock"
	flock 9
	if [ -x "$dir/helm" ]; then
		echo "$dir/helm"
		exit 0
	fi
	# Holding the lock, any temporary output is left over from a build that was killed outright.
	rm -f "$dir"/.*.tmp.*
fi

# Build into a temporary name and rename it into place, so that an interrupted build never
# leaves something that looks cached.
tmp="$dir/.helm.tmp.$$"
trap 'rm -f "$tmp"' EXIT
log "building helm $helm_version into $dir; this takes a few minutes"
start=$SECONDS
# The version is stamped as helm's own release build does (its Makefile), so that
# helm version reports it.
(cd test/helm/tools && GOWORK=off CGO_ENABLED=0 go build -trimpath \
	-ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
	-o "$tmp" helm.sh/helm/v4/cmd/helm) >&2
mv -f "$tmp" "$dir/helm"
log "built helm in $((SECONDS - start))s"
echo "$dir/helm"
