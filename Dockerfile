# syntax=docker/dockerfile:1
# One image for the producer, the dataflow and the notifier:
# `docker run IMAGE producer|dataflow|notifier|init-topics`.
# Slim Python 3.11 on Debian bookworm (glibc 2.36: every pinned dependency ships a manylinux
# wheel for it, so the image has no compiler; the compiled stage installs one for mypyc).

# Build stage: the project as a wheel, the same `pip install .` a user runs, so the image holds
# the installed packages and their console scripts, not a copy of the source tree.
FROM python:3.11.16-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY dataflow/ ./dataflow/
COPY producer/ ./producer/
COPY notifier/ ./notifier/
COPY eval/ ./eval/
RUN pip wheel --no-deps --wheel-dir /wheels .

# Compiled stage: the shard's modules compiled by mypyc (docs/architecture.md, "The compiled
# shard"), on the interpreter they run on. mypyc needs a C compiler, which only this stage
# installs, and type-checks against the pinned dependencies.
FROM python:3.11.16-slim-bookworm AS compiled

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.txt ./
RUN pip install --only-binary=:all: -r requirements.txt
COPY pyproject.toml ./
COPY dataflow/ ./dataflow/
COPY scripts/compile.sh ./scripts/
RUN PY=python OUT=/compiled scripts/compile.sh

FROM python:3.11.16-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so editing the code does not reinstall them. The pins are the project's
# own requirements.txt; --only-binary fails fast instead of trying to compile on a slim image.
COPY requirements.txt ./
RUN pip install --only-binary=:all: -r requirements.txt

# A fixed non-root user. The recovery directory is created here, owned by it, so a named
# volume mounted on it starts out writable by that user.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app \
    && install -d -o app -g app /var/lib/sensor-anomaly/recovery

# The project from the build stage's wheel, without its dependencies (the pins above are
# the tested set). Mounted, not copied, so the wheel leaves no layer behind. Installed by
# root: the app user can run the code but not change it.
# The scorer's loop is compiled here once, not at each start (dataflow/model/kernel.py), into
# a cache the app user can add to.
ENV NUMBA_CACHE_DIR=/var/cache/sensor-anomaly/numba
# The compiled shard, used only while it matches the installed sources: required, so an image
# whose build and sources disagree fails at start instead of running slower unnoticed.
COPY --from=compiled /compiled /app/compiled
ENV DATAFLOW_COMPILED_DIR=/app/compiled \
    DATAFLOW_COMPILED=require
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-deps --no-index /wheels/*.whl \
    && python -c "from dataflow.model.columns import warm; warm()" \
    && python -c "from dataflow.lane import warm; warm()" \
    && chown -R app:app /var/cache/sensor-anomaly
COPY entrypoint.sh ./

USER app:app
ENTRYPOINT ["/app/entrypoint.sh"]
CMD ["dataflow"]
