"""Is a positive/negative linear model's denoising optimum inside its grid? (issue 31 item 2; a check,
not a selection)

The grids tried dropout 0, 0.25 and 0.5, and weighted EASE and PN-EASE both chose 0.5. This fits a
larger dropout (0.75) at ridges 25-800 and two disliked-input weights around the grid's choice (the
other settings as the grid's best on that split) on each split's validation part (the test part
dropped, as in `pngnn tune`) and writes the best against the grid's, so a reader sees whether a wider
grid would have moved the choice. The method is the study's. Run from the repository root against the
store the grid used.

    python scripts/dropout_edge_check.py results/tuning/ml-1m/weighted-ease \
        --out results/tuning/ml-1m/weighted-ease/dropout-0.75-check.json
    python scripts/dropout_edge_check.py results/tuning/ml-1m/pn-ease \
        --out results/tuning/ml-1m/pn-ease/dropout-0.75-check.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pngnn.app.study import validation_only
from pngnn.augment.edges import load_split_step
from pngnn.core.config import TrainConfig
from pngnn.core.settings import Settings
from pngnn.data.prepare import split_step
from pngnn.evaluation.evaluate import evaluate
from pngnn.training.methods import train_method

RIDGES = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0)
# the disliked-input weights tried, around what each grid chose (weighted EASE 0.375-0.5, PN-EASE 0.5)
WEIGHTS = {"weighted-ease": (0.375, 0.5), "pn-ease": (0.5, 1.0)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", type=Path, help="the folder of the grid's seed<N>_study.json records")
    parser.add_argument("--dropout", type=float, default=0.75)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = sorted(args.studies.glob("seed*_study.json"))
    if not paths:
        raise SystemExit(f"no seed<N>_study.json in {args.studies}; pass the folder a grid study's records were "
                         "copied to, e.g. results/tuning/ml-1m/weighted-ease")
    settings, rows = Settings(), []
    for path in paths:
        study = json.loads(path.read_text())
        seed, metric, method = study["seed"], study["metric"], study.get("method", "weighted-ease")
        if method not in WEIGHTS:
            raise SystemExit(f"{path} is a study of {method}; this check takes one of {', '.join(WEIGHTS)}")
        kept = {k: v for k, v in study["best_params"].items() if k not in ("ease_lambda", "disliked_input",
                                                                            "pn_dropout")}
        split_step(settings, study["dataset"], seed, valid_fraction=0.1)  # the study's carve-out, seeded
        split = validation_only(load_split_step(settings, study["dataset"], seed))
        for lam in RIDGES:
            for w in WEIGHTS[method]:
                cfg = TrainConfig(ease_lambda=lam, disliked_input=w, pn_dropout=args.dropout, **kept)
                model = train_method(method, split, cfg, progress=False).model
                value = evaluate(model.full_sort_predict, split.n_items, split.train, split.valid)[metric]
                rows.append({"seed": seed, "method": method, "ease_lambda": lam, "disliked_input": w, **kept,
                             "pn_dropout": args.dropout, metric: value, "grid_best": study["best_value"],
                             "grid_best_params": study["best_params"]})
        best = max((r for r in rows if r["seed"] == seed), key=lambda r: r[metric])
        print(f"seed {seed}: grid best {study['best_value']:.4f}; dropout {args.dropout} best {best[metric]:.4f} "
              f"(lambda {best['ease_lambda']:g}, w {best['disliked_input']:g})", flush=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
