#!/usr/bin/env bash
# The GPU path, checked on a real GPU in under 5 minutes (issue 30 item 4): the CUDA numerical tests,
# then the training and scaling benchmarks with --device cuda, JSON into $OUT (the device tool's
# folder) or benchmarks/results/gpu/. Run from the repository root with the venv built
# (`make setup`); ML-100K/1M come from PNGNN_DATA_DIR (default ../shared/data).
set -euo pipefail
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PNGNN_DATA_DIR=${PNGNN_DATA_DIR:-$(cd .. && pwd)/shared/data} DO_NOT_TRACK=true MLFLOW_DISABLE_TELEMETRY=true
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" || true
"$PY" -c "import torch, json; print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'available': torch.cuda.is_available(), 'device': torch.cuda.get_device_name() if torch.cuda.is_available() else None}))" | tee "$OUT/torch.json"
timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_device.py --junitxml "$OUT/cuda_tests.xml" | tail -3
timeout 90 "$PY" benchmarks/bench_training.py --device cuda --epochs 2 --out "$OUT/training_speed_cuda.json" | tail -3
timeout 90 "$PY" benchmarks/bench_scaling.py --device cuda --sizes 1000000,5000000 --batches 10 --out "$OUT/scaling_cuda.json" | tail -3
timeout 90 "$PY" benchmarks/bench_closed_form.py --device cuda --methods ease,pn-ease --out "$OUT/closed_form_cuda.json" | tail -3
echo "gpu check done: $(ls "$OUT")"
