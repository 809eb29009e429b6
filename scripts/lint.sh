#!/usr/bin/env bash
# `make lint`, and the first check of `make test` (so of CI): one list of static checks.
#
# - ruff: style, imports, annotations (pyproject.toml, [tool.ruff]);
# - mypy: types of dataflow/, producer/, eval/ and notifier/, strict on the pure modules
#   (pyproject.toml, [tool.mypy]);
# - shellcheck: the shell scripts, when it is installed (scripts/test.sh installs it first).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m mypy
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck scripts/*.sh entrypoint.sh
else
  echo "warning: shellcheck not installed: shell scripts not checked" >&2
fi
