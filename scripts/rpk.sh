#!/usr/bin/env bash
# Redpanda's `rpk` CLI, built once from the Go module proxy and cached outside the repo.
#
#   scripts/rpk.sh build      build rpk unless it is cached; print the binary's path
#   scripts/rpk.sh path       print the cached binary's path; exit 1 if it is not built yet
#   scripts/rpk.sh ARGS...    run `rpk ARGS...`, building it first if needed, e.g.
#                             scripts/rpk.sh topic consume anomalies -X brokers=127.0.0.1:9092 --num 5
#
# Why build it: rpk ships inside Redpanda's packages and images, and none of those is reachable
# here; only the Go module proxy is. rpk is a Go module, but `go install rpk@version` refuses it
# (its go.mod has a replace directive). So scripts/rpk/ is a tiny wrapper module: its go.mod pins
# rpk by pseudo-version (the proxy serves no tags or @latest for it), copies rpk's replace
# directive, and names rpk as a `tool`; its go.sum is committed, and every build runs with
# -mod=readonly, so each downloaded module is checked against that go.sum (some of them are not
# in the public checksum database at all).
#
# First build: ~25 s of downloads and ~4 min of `go build` on 2 cores; later calls reuse the
# binary. Concurrent builds are serialised with flock.
#
# To move the pin: in scripts/rpk/, delete the require blocks of go.mod and go.sum, then
#   GONOSUMDB=buf.build/gen/go,github.com/redpanda-data,github.com/twmb/franz-go/pkg/sr,github.com/lestrrat-go/jwx \
#     go get -tool github.com/redpanda-data/redpanda/src/go/rpk/cmd/rpk@<pseudo-version>
# (take the replace directive from that rpk's go.mod), and commit go.mod and go.sum.
#
# Environment (defaults in brackets):
#   RPK_CACHE_DIR   parent of the cached rpk-<version>/ [${XDG_CACHE_HOME:-$HOME/.cache}/sensor-anomaly];
#                   an rpk-<version>/ there that this script did not make is never replaced
#   GO              the Go command, 1.24 or newer [go]
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
readonly SCRIPT_DIR
# die, and the replacement of a directory only if this script made it.
# shellcheck source=scripts/server-lib.sh
source "$SCRIPT_DIR/server-lib.sh"
# build | path | help | ARGS..., the cache and its lock, shared with helm.sh.
# shellcheck source=scripts/gotool-lib.sh
source "$SCRIPT_DIR/gotool-lib.sh"
readonly MODULE_DIR="$SCRIPT_DIR/rpk"
readonly RPK_MODULE="github.com/redpanda-data/redpanda/src/go/rpk"
readonly RPK_PKG="$RPK_MODULE/cmd/rpk"
readonly VERSION_PKG="$RPK_MODULE/pkg/cli/version"
GO="${GO:-go}"
RPK_CACHE_DIR="${RPK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sensor-anomaly}"

# The pinned pseudo-version, read from the wrapper's go.mod (the one source of truth).
rpk_version() {
  local version
  version="$(sed -n "s|^[[:space:]]*$RPK_MODULE \(v[^[:space:]]*\).*|\1|p" "$MODULE_DIR/go.mod")"
  [[ -n "$version" ]] || die "no requirement on $RPK_MODULE in $MODULE_DIR/go.mod"
  echo "$version"
}

readonly TOOL=rpk
TOOL_VERSION="$(rpk_version)"
readonly TOOL_VERSION
readonly INSTALL_DIR="$RPK_CACHE_DIR/rpk-$TOOL_VERSION"
# RPK_CACHE_DIR may name any directory: its rpk-<version>/ is replaced only if this script made it
# (the binary alone, before it wrote the ownership marker).
readonly INSTALL_WHY="to put the rpk it builds there; move it away, or set RPK_CACHE_DIR to another directory"

# -mod=readonly: never rewrite go.mod/go.sum, so every module is verified against the
# committed go.sum. -buildvcs=false: the wrapper lives in this repo's git tree; its VCS state
# is irrelevant to rpk. -s -w: no symbol tables (91 MiB -> 65 MiB).
gotool_build() {
  local rev="${TOOL_VERSION##*-}"
  (cd -- "$MODULE_DIR" && GOWORK=off "$GO" build \
    -mod=readonly -buildvcs=false -trimpath \
    -ldflags "-s -w -X $VERSION_PKG.version=$TOOL_VERSION -X $VERSION_PKG.rev=$rev" \
    -o "$1/rpk" "$RPK_PKG")
}

gotool_main "$@"
