"""EASE and PN-EASE in float32 against float64 on ML-1M split 1: do the metrics move?

The closed forms hold one n x n matrix (``pngnn.models.gram``); float32 halves it. Each model is
fitted with its tuned split-1 configuration (``profiles/<method>-ml-1m.json``) in both precisions,
in one process, and evaluated by full ranking on the test part. Writes
benchmarks/results/closed_form_precision.json: every metric in both precisions, the largest
absolute difference, fit seconds and the peak RSS of each fit (measured in a fresh child process).

    PNGNN_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_closed_form_precision.py
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

METHODS = ("ease", "pn-ease")
DTYPES = ("float32", "float64")


def child(method: str, dtype: str, db: str) -> dict:
    from pngnn.augment.edges import load_split_step
    from pngnn.core.profiles import get_profile
    from pngnn.core.settings import Settings
    from pngnn.models.linear import fit_ease, fit_pn_ease
    from pngnn.training.outcome import evaluate_step

    settings = Settings.from_env().model_copy(update={"db_path": Path(db)})
    split = load_split_step(settings, "ml-1m", 1)
    cfg = get_profile(f"{method}-ml-1m", settings).config_for(1)
    t0 = time.perf_counter()
    if method == "ease":
        model = fit_ease(split.train, split.n_users, split.n_items, cfg.ease_lambda, cfg.ease_ratings, cfg.threshold,
                         dtype=np.dtype(dtype))
    else:
        model = fit_pn_ease(split.train, split.n_users, split.n_items, cfg.ease_lambda, cfg.disliked_input,
                            cfg.disliked_score, cfg.threshold, dtype=np.dtype(dtype))
    fit_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    metrics, _ = evaluate_step(model, split, cfg.threshold)
    overall = {k: round(v, 6) for k, v in metrics.items() if "/" not in k}
    return {"fit_seconds": round(fit_s, 2), "peak_rss_gb": round(peak / 2**30, 3), "metrics": overall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/closed_form_precision.json"))
    parser.add_argument("--db", default="benchmarks/out/precision.duckdb")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "DTYPE"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.db)))
        return
    from pngnn.core.settings import Settings
    from pngnn.data.prepare import ingest_step, split_step

    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env().model_copy(update={"db_path": Path(args.db)})
    ingest_step(settings, "ml-1m")
    split_step(settings, "ml-1m", 1)
    rows: dict[str, dict] = {}
    for method in METHODS:
        rows[method] = {}
        for dtype in DTYPES:
            out = subprocess.run([sys.executable, __file__, "--db", args.db, "--child", method, dtype],
                                 capture_output=True, text=True, check=True)
            rows[method][dtype] = json.loads(out.stdout.strip().splitlines()[-1])
        m32, m64 = rows[method]["float32"]["metrics"], rows[method]["float64"]["metrics"]
        rows[method]["max_abs_metric_difference"] = max(abs(m32[k] - m64[k]) for k in m64)
    result = {"dataset": "ml-1m", "split_seed": 1, "machine": f"{platform.machine()} {platform.processor()}",
              "methods": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for method in METHODS:
        r = rows[method]
        print(f"{method}: float32 {r['float32']['fit_seconds']} s {r['float32']['peak_rss_gb']} GB, float64 "
              f"{r['float64']['fit_seconds']} s {r['float64']['peak_rss_gb']} GB, largest metric difference "
              f"{r['max_abs_metric_difference']:.2e}")


if __name__ == "__main__":
    main()
