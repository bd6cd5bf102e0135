# One model's image: the shared base (docker/base.Dockerfile) + common/ + models/<MODEL>/.
# The same file serves all eight models; a model whose image must differ gets models/<name>/Dockerfile,
# which `make build` then uses instead. A model's extra pins go in models/<name>/requirements.lock.
ARG BASE=fer-crossval/base:latest
FROM ${BASE}
ARG BASE
ARG MODEL
ARG GIT_COMMIT=unknown
ARG BASE_IMAGE=unknown

COPY common common
COPY models/__init__.py models/__init__.py
COPY models/${MODEL} models/${MODEL}

ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_FIND_LINKS=
ARG PIP_CERT=
RUN set -eu; \
    test -n "${MODEL}" || { echo "build arg MODEL is required" >&2; exit 1; }; \
    if [ -f "models/${MODEL}/requirements.lock" ]; then \
        for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_CERT; do \
            eval "val=\${$v:-}"; [ -n "$val" ] || unset "$v"; \
        done; \
        pip install --no-deps --require-hashes -r "models/${MODEL}/requirements.lock" && pip check; \
    fi

# A read-only root filesystem with a writable /tmp: caches and HOME go there.
ENV PYTHONPATH=/opt/fer-crossval \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    TORCH_HOME=/tmp/torch \
    FER_GIT_COMMIT=${GIT_COMMIT} \
    FER_MODEL=${MODEL}
LABEL org.opencontainers.image.title="fer-crossval ${MODEL}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      fer-crossval.model="${MODEL}" \
      fer-crossval.base="${BASE}"
USER fer
ENTRYPOINT ["python", "-m", "common.run"]
