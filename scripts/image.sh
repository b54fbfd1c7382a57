#!/usr/bin/env bash
# Builds the meshdns container image as a tarball, with no container daemon and no registry:
# static binaries of ./cmd/meshdns, the two files of its platform's image (/meshdns, the
# entrypoint, run as 65532:65532, and /meshdns-agent, built with -tags nokube for agents),
# written by the program in build/image (its own module).
#
#   scripts/image.sh [--version V] [--platforms LIST] [--format oci|docker] [OUT]
#
# --version   stamped into the binary (meshdns version) and the tag; default
#             `git describe --tags --always --dirty`
# --platforms comma-separated, of linux/amd64, arm64, ppc64le, riscv64, s390x; default
#             linux/amd64,linux/arm64 (oci), this machine's architecture (docker)
# --format    oci (default): an OCI image layout tar holding an index of every platform, for
#             skopeo, crane, podman; docker: a `docker load` tar of one platform
# OUT         default bin/meshdns.oci.tar or bin/meshdns.docker.tar
#
# Two builds of the same commit with the same Go give the same bytes: the binaries are built
# with -trimpath and without VCS stamping, and every timestamp in the image is
# SOURCE_DATE_EPOCH, by default the commit's time. The one line on stdout is OUT and a digest:
# the index's (oci), which registries keep when the index is copied unchanged, or the image ID
# (docker), which `docker load` shows.
set -euo pipefail

usage() { sed -n '/^#   scripts/,/^# OUT/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

version="" platforms="" format=oci out=""
while (($#)); do
	case "$1" in
	--version) version=${2:?--version needs a value}; shift 2 ;;
	--platforms) platforms=${2:?--platforms needs a value}; shift 2 ;;
	--format) format=${2:?--format needs a value}; shift 2 ;;
	-h | --help) usage ;;
	-*) echo "image.sh: unknown flag $1" >&2; usage ;;
	*) [ -z "$out" ] || usage; out=$1; shift ;;
	esac
done
case "$format" in
oci) : "${platforms:=linux/amd64,linux/arm64}" ;;
docker) : "${platforms:=linux/$(go env GOARCH)}" ;;
*) echo "image.sh: --format $format: want oci or docker" >&2; exit 2 ;;
esac
IFS=, read -ra plats <<<"$platforms"
for plat in "${plats[@]}"; do
	# The architectures build/image/binary.go knows; checked here too, before any build.
	case "$plat" in
	linux/amd64 | linux/arm64 | linux/ppc64le | linux/riscv64 | linux/s390x) ;;
	*) echo "image.sh: platform $plat: want linux/amd64, arm64, ppc64le, riscv64 or s390x" >&2; exit 2 ;;
	esac
done
if [ -n "$out" ]; then
	case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
fi
cd "$(dirname "$0")/.."
root=$PWD

revision=""
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	revision=$(git rev-parse HEAD)
	: "${version:=$(git describe --tags --always --dirty)}"
	: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct)}"
elif [ -z "$version" ]; then
	echo "image.sh: not a git checkout; give --version (and SOURCE_DATE_EPOCH)" >&2
	exit 2
fi
: "${SOURCE_DATE_EPOCH:=0}"
# The version is the image's tag as well, so it must be one (the docker tag grammar).
if ! [[ $version =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
	echo "image.sh: version $version is not an image tag: letters, digits, _ . - (at most 128)" >&2
	exit 2
fi
: "${out:=$root/bin/meshdns.$format.tar}"
mkdir -p "$(dirname "$out")"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

binaries=()
for plat in "${plats[@]}"; do
	dir="$tmp/${plat//\//-}"
	# /meshdns, and /meshdns-agent: the build for agents, without Kubernetes client code.
	for build in meshdns: meshdns-agent:nokube; do
		name=${build%%:*} tags=${build#*:}
		echo "image.sh: building $name $version for $plat" >&2
		# GOFLAGS, GOAMD64 and GOARM64 are fixed so that the caller's environment changes neither
		# the bytes nor the CPUs the image runs on.
		env CGO_ENABLED=0 GOOS="${plat%%/*}" GOARCH="${plat#*/}" GOFLAGS=-buildvcs=false GOAMD64=v1 GOARM64=v8.0 \
			go build -trimpath -tags "$tags" -ldflags "-s -w -X main.version=$version" -o "$dir/$name" ./cmd/meshdns
	done
	binaries+=(-binary "$plat=$dir/meshdns" -agent-binary "$plat=$dir/meshdns-agent")
done

(cd build/image && GOWORK=off GOFLAGS=-mod=readonly go build -o "$tmp/image" .)
"$tmp/image" -o "$out" -format "$format" -version "$version" -revision "$revision" \
	-created "$SOURCE_DATE_EPOCH" "${binaries[@]}"
