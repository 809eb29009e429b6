# shellcheck shell=bash
# What the scripts that build a Go program once from the Go module proxy share (rpk.sh,
# helm.sh): the cache directory outside the checkout, the lock that serialises concurrent
# builds, the check that the new binary runs, and the `build | path | help | ARGS...` commands.
# Sourced after server-lib.sh (die, mark_owned, require_owned, replace_owned_dir).
#
# The sourcing script sets, before it calls gotool_main "$@":
#   TOOL          the program's name, also the binary's file name
#   TOOL_VERSION  the pinned version, for messages
#   INSTALL_DIR   the cached <name>-<version>/ directory (replaced only if a script made it)
#   INSTALL_WHY   the end of require_owned's refusal: what the directory is for
#   GO            the Go command
# and defines `gotool_build DIR`, which builds the binary into DIR/$TOOL.

gotool_bin() {
  echo "$INSTALL_DIR/$TOOL"
}

gotool_is_built() {
  [[ -x "$(gotool_bin)" ]]
}

gotool_cmd_build() {
  if gotool_is_built; then
    gotool_bin
    return 0
  fi
  command -v "$GO" >/dev/null 2>&1 \
    || die "Go not found ('$GO'): $TOOL is built from source with Go 1.24+; install Go or set GO"
  mkdir -p "$(dirname -- "$INSTALL_DIR")"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$INSTALL_DIR.lock"
    flock 9
    if gotool_is_built; then # another process built it while we waited
      gotool_bin
      return 0
    fi
  fi
  local tmp start
  require_owned "$INSTALL_DIR" "$INSTALL_WHY" "$TOOL"
  tmp="$(mktemp -d "$INSTALL_DIR.tmp.XXXXXX")"
  # shellcheck disable=SC2064 # expand $tmp now: it is local to this function
  trap "rm -rf -- '$tmp'" EXIT
  start=$SECONDS
  echo "building $TOOL $TOOL_VERSION with $("$GO" env GOVERSION) into $INSTALL_DIR (first run only, a few minutes)..." >&2
  gotool_build "$tmp" || die "go build of $TOOL $TOOL_VERSION failed (see above)"
  "$tmp/$TOOL" version >/dev/null 2>&1 || "$tmp/$TOOL" --version >/dev/null 2>&1 \
    || die "the $TOOL just built does not run: $tmp/$TOOL version failed"
  chmod 755 "$tmp" # mktemp -d makes it private
  mark_owned "$tmp" "$TOOL $TOOL_VERSION"
  replace_owned_dir "$tmp" "$INSTALL_DIR" "$INSTALL_WHY" "$TOOL"
  trap - EXIT
  echo "built $TOOL in $((SECONDS - start)) s" >&2
  gotool_bin
}

gotool_cmd_path() {
  if gotool_is_built; then
    gotool_bin
    return 0
  fi
  echo "$TOOL $TOOL_VERSION is not built yet (scripts/$TOOL.sh build)" >&2
  return 1
}

gotool_main() {
  case "${1:-}" in
    build)
      (($# == 1)) || die "usage: $(basename -- "$0") build"
      gotool_cmd_build
      ;;
    path)
      (($# == 1)) || die "usage: $(basename -- "$0") path"
      gotool_cmd_path
      ;;
    "" | -h | --help | help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      ;;
    *)
      gotool_is_built || gotool_cmd_build >/dev/null
      exec "$(gotool_bin)" "$@"
      ;;
  esac
}
