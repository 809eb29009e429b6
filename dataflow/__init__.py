"""Streaming anomaly detection for sensor fleets: Kafka -> Bytewax -> River -> Kafka.

The shard's modules (``COMPILED``) also come compiled by mypyc (``scripts/compile.sh``, ``make
compiled``): the same source as native classes, with fewer interpreter steps per window
(bench/RESULTS.md). They are used only while the build's stamp matches this package's sources
and the interpreter, and it holds each of them; else the source
runs, which is the reference the compiled build is tested against
(tests/unit/dataflow/test_compiled.py). ``DATAFLOW_COMPILED``: ``auto`` (the default: the
build where it matches), ``off`` (never), ``require`` (fail at import without a matching
build: ``make test`` and the image); ``DATAFLOW_COMPILED_DIR``: where the build is
(``build/compiled`` beside the package's directory by default).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path

COMPILED = ("windows", "closes", "shard")
MODES = ("auto", "off", "require")
# This interpreter's extension suffix (Python version and platform): a build is for one.
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
_HERE = Path(__file__).resolve().parent


def sources_digest(package: str | Path = _HERE) -> str:
    """A digest of every module of the package at ``package``: a compiled module is built
    against the others' types, so any change makes a build stale."""
    root = Path(package)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_stamp(package: str | Path = _HERE) -> str:
    """What a build's STAMP says: the sources it came from and the interpreter it is for (its
    extension suffix names the Python version and platform), so a build is used only by the
    interpreter that made it, on the sources it made it from."""
    return f"{sources_digest(package)} {SUFFIX}"


def _use_compiled() -> Path | None:
    """The build to import ``COMPILED`` from, or None (the source), by ``DATAFLOW_COMPILED``."""
    mode = os.environ.get("DATAFLOW_COMPILED", "auto").strip().lower() or "auto"
    if mode not in MODES:  # refused by the settings (dataflow.config), naming the variable
        return None
    if mode == "off":
        return None
    built = Path(os.environ.get("DATAFLOW_COMPILED_DIR") or _HERE.parent / "build" / "compiled")
    stamp = built / "STAMP"
    why = ""
    if not stamp.is_file():
        why = f"no build at {built} (make compiled)"
    elif stamp.read_text().strip() != build_stamp():
        why = f"the build at {built} is of other sources or another Python (make compiled)"
    else:
        wanted = [f"dataflow/{name}{SUFFIX}" for name in COMPILED]
        missing = [name for name in wanted if not (built / name).is_file()]
        if not list(built.glob(f"*__mypyc{SUFFIX}")):
            missing.insert(0, f"its runtime library (*__mypyc{SUFFIX})")
        if missing:
            why = f"the build at {built} lacks {', '.join(missing)}"
    if not why:
        return built
    if mode == "require":
        raise ImportError(f"DATAFLOW_COMPILED=require: {why}")
    if stamp.is_file():  # a developer's edit since the last build: worth a word, not a stop
        warnings.warn(f"dataflow: running the shard as Python: {why}", stacklevel=2)
    return None


def _load(built: Path) -> None:
    """Make ``built`` the first place this package's modules are looked for. Its runtime
    library (shared by the compiled modules, imported by them under its own top-level name)
    is loaded here from its file, so nothing is added to ``sys.path``."""
    for library in built.glob(f"*__mypyc{SUFFIX}"):
        name = library.name.partition(".")[0]
        spec = importlib.util.spec_from_file_location(name, library)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {library}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    __path__.insert(0, str(built / "dataflow"))


COMPILED_FROM = _use_compiled()  # the build in use, or None
if COMPILED_FROM is not None:
    _load(COMPILED_FROM)
