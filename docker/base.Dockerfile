# Shared base of every model image: Python, the pinned dependencies and common/.
#   docker build -f docker/base.Dockerfile -t fer-crossval/base .
# CUDA is pinned through the torch wheel of requirements.txt (torch 2.14.1 with its CUDA 13.0 runtime
# inside the wheel); the host needs an NVIDIA driver for CUDA 13 and the NVIDIA container toolkit.
FROM docker.io/library/python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/fer-crossval
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY common common
COPY models/__init__.py models/__init__.py
# The harness mounts the results folder and the datasets and passes the run's spec.json.
ENTRYPOINT ["python", "-m", "common.run"]
