#!/usr/bin/env bash
# The shard's modules compiled by mypyc (part of mypy, pinned in requirements.txt) into
# build/compiled, with a stamp of the sources they came from: `make compiled`, and a step of
# `make test`. dataflow/__init__.py uses them only while the stamp matches the package's sources
# (DATAFLOW_COMPILED in docs/configuration.md); the source is the reference, and runs wherever they do not.
#
# mypyc writes its extensions next to the sources it reads, so it works on a copy: the checkout
# never holds an extension that Python would import before an edited source.
# PY: the interpreter whose mypy compiles (.venv's by default); OUT: where the result goes.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

PY="${PY:-.venv/bin/python}"
# Absolute, as the build runs in another directory; a venv's interpreter is not resolved past
# its link (that would leave the venv).
if [[ "$PY" == */* ]]; then
  PY="$(cd -- "$(dirname -- "$PY")" && pwd)/$(basename -- "$PY")"
else
  PY="$(command -v -- "$PY")"
fi
OUT="${OUT:-build/compiled}"
# Keep in step with dataflow/__init__.py's COMPILED.
readonly MODULES=(dataflow/windows.py dataflow/closes.py dataflow/shard.py)

stage="$(mktemp -d)"
trap 'rm -rf -- "$stage"' EXIT
cp -R dataflow pyproject.toml "$stage/"
find "$stage/dataflow" -name __pycache__ -prune -exec rm -rf {} +
echo "compiling ${MODULES[*]} with mypyc (a few minutes)"
(cd "$stage" && "$PY" -m mypyc "${MODULES[@]}" >build.log 2>&1) || {
  tail -n 40 "$stage/build.log" >&2
  echo "error: mypyc failed (above); the flow runs the shard as Python meanwhile" >&2
  exit 1
}

# The result, then its stamp, replace the old build at once.
next="$OUT.next"
rm -rf -- "$next"
mkdir -p "$next/dataflow"
cp "$stage"/*__mypyc.*.so "$next/"
for module in "${MODULES[@]}"; do
  cp "$stage/${module%.py}".*.so "$next/dataflow/"
done
# Off: importing the package must not look for the build being made (require would refuse).
DATAFLOW_COMPILED=off "$PY" -c \
  'import sys; from dataflow import build_stamp; print(build_stamp(sys.argv[1]))' \
  "$stage/dataflow" >"$next/STAMP"
rm -rf -- "$OUT"
mv -- "$next" "$OUT"
echo "compiled into $OUT"
