# Shared base of every model image: Debian bookworm, its Python 3.11, and every Python package of
# requirements.lock (the whole transitive set, exact versions and sha256 hashes), installed into /opt/venv.
#
# CUDA comes with the locked torch 2.14.1 wheel (CUDA 13.0) and its nvidia-* runtime wheels; the host
# needs an NVIDIA driver >= 580 and the NVIDIA container toolkit (docker/README.md). Build it through
# `make build` (python -m harness build), which derives the tag from the content and passes the args.
#
# BASE_IMAGE: the upstream Debian image, pinned by its dated tag. Hosts that cannot reach a registry
# pass a local bookworm made by `make engine` (debootstrap) instead: same distribution, same packages.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-20251117-slim
FROM ${BASE_IMAGE}
ARG BASE_IMAGE

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv

# Package sources for pip, given at build time only (never stored in the image): an index mirror, a
# local wheel folder or a CA bundle mounted into the build. Empty means pip's defaults.
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_FIND_LINKS=
ARG PIP_CERT=
COPY requirements.lock /tmp/requirements.lock
RUN set -eu; \
    for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_CERT; do \
        eval "val=\${$v:-}"; [ -n "$val" ] || unset "$v"; \
    done; \
    pip install --no-deps --require-hashes -r /tmp/requirements.lock \
    && pip check \
    && rm /tmp/requirements.lock

# Runs use the calling user's uid/gid (the harness passes --user); this account is for anything else.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/fer --shell /usr/sbin/nologin fer

WORKDIR /opt/fer-crossval
LABEL org.opencontainers.image.title="fer-crossval base" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.source="FER-crossval"
