"""Fit and full-evaluation time of the closed-form and factorisation models on ML-1M split 1.

EASE, PN-EASE and iALS, each with its tuned profile when one is saved (``profiles/<method>-ml-1m.json``,
the configuration of split 1), else the defaults; the same process, one after another, so the
times compare as ratios. Writes benchmarks/results/closed_form_speed.json. ``--device cuda``: the
inverse on the GPU (``pngnn.models.gram_device``), the evaluation as on the CPU.

    PNGNN_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_closed_form.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch

from pngnn.augment.edges import load_split_step
from pngnn.core.config import TrainConfig
from pngnn.core.profiles import get_profile
from pngnn.core.settings import Settings
from pngnn.data.prepare import ingest_step, split_step
from pngnn.training.device import resolve_device, use_device
from pngnn.training.methods import method_settings, train_method
from pngnn.training.outcome import evaluate_step

METHODS = ("ease", "pn-ease", "ials")


def config_for(method: str, settings: Settings) -> tuple[TrainConfig, str]:
    name = f"{method}-ml-1m"
    if (settings.profiles_dir / f"{name}.json").is_file():
        return get_profile(name, settings).config_for(1), name
    return TrainConfig(), "defaults"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/closed_form_speed.json"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--device", default="cpu", help="where the closed forms' inverse is made")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    settings = Settings.from_env()
    ingest_step(settings, "ml-1m")
    split_step(settings, "ml-1m", 1)
    split = load_split_step(settings, "ml-1m", 1)
    rows = {}
    for method in args.methods.split(","):
        cfg, source = config_for(method, settings)
        t0 = time.perf_counter()
        with use_device(device):
            result = train_method(method, split, cfg, progress=False)
        fit_s = time.perf_counter() - t0
        metrics, eval_s = evaluate_step(result.model, split, cfg.threshold)
        rows[method] = {"config": method_settings(method, cfg), "config_source": source,
                        "fit_seconds": round(fit_s, 2), "eval_seconds": round(eval_s, 2),
                        "total_seconds": round(fit_s + eval_s, 2), "precision@5": metrics["precision@5"],
                        "recall@20": metrics["recall@20"],
                        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        print(method, json.dumps(rows[method]), flush=True)
    out = {"dataset": "ml-1m", "split_seed": 1, "n_train": len(split.train), "torch_threads": args.threads,
           "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
           "machine": f"{platform.machine()} {platform.node()}", "cpus": os.cpu_count(),
           "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "methods": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
