# syntax=docker/dockerfile:1
# tessy-dagster-gpu: the worker image of the GPU step Jobs (boundary model, trace generation, SFT,
# benchmark generation with the vllm backend). Build from the repository root:
#   docker build -f kubernetes/images/gpu.Dockerfile -t tessy-dagster-gpu:0.1.0 .
# A CUDA *devel* base: Triton and FlashInfer compile kernels at run time (gcc, nvcc). Keep its CUDA
# major version equal to torch's (python -c "import torch; print(torch.version.cuda)" in the image);
# the node's driver must support it.
ARG CUDA_IMAGE=nvidia/cuda:12.9.1-cudnn-devel-ubuntu22.04
FROM ${CUDA_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Python 3.11 (the package requires >=3.11,<3.12; Ubuntu 22.04 ships 3.10) from the deadsnakes PPA,
# in a virtual environment that is first on PATH.
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev git \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# The CUDA build of the pinned torch (PyPI's Linux wheel, with its nvidia-* runtime wheels), then the
# package with vLLM's CUDA build, which is built against that same torch.
RUN pip install "torch==2.13.0"

WORKDIR /opt/tessy
COPY pyproject.toml workspace.yaml ./
COPY tessy_dagster ./tessy_dagster
COPY assets ./assets
COPY resources ./resources
# As in cpu.Dockerfile: the pinned dependencies and the package's data files, checked.
RUN pip install ".[vllm]" \
 && python -c "import importlib.resources as r; \
assert (r.files('tessy_dagster.train') / 'accelerate_fsdp.yaml').is_file()" \
 && python -c "import torch, vllm, tessy_dagster.steps; print(torch.__version__, torch.version.cuda, vllm.__version__)"

ENV TESSY_HOME=/tessy \
    TESSY_SETTINGS=/etc/tessy/settings.json
RUN mkdir -p /tessy /etc/tessy

# The kubernetes launcher sets each Job's command (the step's entrypoint in tessy_dagster/steps/).
CMD ["python", "-c", "import tessy_dagster.steps; print('tessy-dagster-gpu: the launcher sets the command')"]
