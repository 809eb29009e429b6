#!/usr/bin/env bash
# Helm, built once from the Go module proxy and cached outside the repo, to lint and render
# the chart in charts/sensor-anomaly/ (docs/kubernetes.md) without a cluster.
#
#   scripts/helm.sh build      build helm unless it is cached; print the binary's path
#   scripts/helm.sh path       print the cached binary's path; exit 1 if it is not built yet
#   scripts/helm.sh ARGS...    run `helm ARGS...`, building it first if needed, e.g.
#                              scripts/helm.sh template demo charts/sensor-anomaly
#
# Why build it: Helm's release tarballs are not reachable here; the Go module proxy is. Helm
# is a plain Go module (no replace directives), so `go install helm.sh/helm/v4/cmd/helm@VERSION`
# builds it, each module checked against the public checksum database. The version is pinned
# below (HELM_VERSION) and written into the binary, so `helm version` names it.
#
# First build: about 2.5 minutes on 2 cores (downloads, then `go build`); later calls reuse
# the binary. Concurrent builds are serialised with flock.
#
# Environment (defaults in brackets):
#   HELM_CACHE_DIR  parent of the cached helm-<version>/ [${XDG_CACHE_HOME:-$HOME/.cache}/sensor-anomaly];
#                   a helm-<version>/ there that this script did not make is never replaced
#   GO              the Go command, 1.24 or newer [go]
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
readonly SCRIPT_DIR
# shellcheck source=scripts/server-lib.sh
source "$SCRIPT_DIR/server-lib.sh"
# shellcheck source=scripts/gotool-lib.sh
source "$SCRIPT_DIR/gotool-lib.sh"

readonly HELM_MODULE="helm.sh/helm/v4"
readonly TOOL=helm
readonly TOOL_VERSION="v4.3.2"
GO="${GO:-go}"
HELM_CACHE_DIR="${HELM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sensor-anomaly}"
readonly INSTALL_DIR="$HELM_CACHE_DIR/helm-$TOOL_VERSION"
readonly INSTALL_WHY="to put the helm it builds there; move it away, or set HELM_CACHE_DIR to another directory"

# GOBIN: `go install` writes the binary straight into the new directory. GOFLAGS is cleared
# so a caller's -mod=... cannot apply to a module-aware install (go refuses it). -s -w: no
# symbol tables. The version variable is Helm's own (internal/version), as its Makefile sets.
gotool_build() {
  GOBIN="$1" GOFLAGS=-buildvcs=false GOWORK=off "$GO" install -trimpath \
    -ldflags "-s -w -X $HELM_MODULE/internal/version.version=$TOOL_VERSION" \
    "$HELM_MODULE/cmd/helm@$TOOL_VERSION"
}

gotool_main "$@"
