# syntax=docker/dockerfile:1
# tessy-dagster: the orchestrator and user-code image (Dagster code server, run pods). CPU only.
# Build from the repository root (the build context):
#   docker build -f kubernetes/images/cpu.Dockerfile -t tessy-dagster:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The CPU wheel of the pinned torch first: an unpinned or default torch pulls several GB of CUDA
# packages that this image never uses. `pip install .` then finds torch==2.13.0 already satisfied.
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu

WORKDIR /opt/tessy
COPY pyproject.toml workspace.yaml ./
COPY tessy_dagster ./tessy_dagster
COPY assets ./assets
COPY resources ./resources
# Exactly the package's pinned dependencies from pyproject.toml, and its data files (package-data: the FSDP
# accelerate config), checked to be installed.
RUN pip install . \
 && python -c "import importlib.resources as r, tessy_dagster.definitions; \
assert (r.files('tessy_dagster.train') / 'accelerate_fsdp.yaml').is_file()"

ENV TESSY_HOME=/tessy \
    TESSY_SETTINGS=/etc/tessy/settings.json \
    DAGSTER_HOME=/opt/dagster/dagster_home
RUN mkdir -p /tessy /etc/tessy /opt/dagster/dagster_home

# The Helm chart sets the command (dagster code-server start ... / dagster api execute_run ...).
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "3030", "-m", "tessy_dagster.definitions"]
