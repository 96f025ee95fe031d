"""Write a stand-in for a shop's warehouse export: a Parquet log of interactions with string ids,
1-5 star ratings and timestamps, and a CSV catalogue with titles and descriptions.

For the "your own data" walk-through (docs/your-data.md) and the tests: data shaped like a real
export (skewed popularity, users with a taste that drifts slowly over a year, ratings that follow
the taste) without shipping anyone's data. Vectorised: 1M interactions in seconds.

    python scripts/example_log.py --interactions 1000000 --out shop
    # -> shop/interactions.parquet (customer_id, sku, stars, ts) and shop/catalog.csv (sku, name, description)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

START = np.datetime64("2025-01-01T00:00:00", "s")
YEAR_S = 365 * 24 * 3600
GENRES = ("outdoor", "kitchen", "books", "audio", "garden", "toys", "sports", "office")


def example_log(n_interactions: int, seed: int = 0, dim: int = 8) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(interactions, catalogue): about ``n_interactions`` unique (customer, sku) rows."""
    rng = np.random.default_rng(seed)
    n_users = max(50, n_interactions // 160)
    n_items = max(40, int(n_interactions ** 0.62))
    user_weight = 1.0 / np.arange(1, n_users + 1) ** 0.5  # a few heavy buyers, a long tail
    item_weight = 1.0 / np.arange(1, n_items + 1) ** 0.9
    user_weight, item_weight = user_weight / user_weight.sum(), item_weight / item_weight.sum()
    taste = rng.normal(size=(n_users, dim)).astype(np.float32)
    profile = rng.normal(size=(n_items, dim)).astype(np.float32)
    draws = int(n_interactions * 1.6)  # pairs drawn twice are dropped below
    users = rng.choice(n_users, size=draws, p=user_weight)
    candidates = rng.choice(n_items, size=(draws, 6), p=item_weight)  # what the shop showed
    affinity = np.einsum("nd,nkd->nk", taste[users], profile[candidates]) / np.sqrt(dim)
    pick = np.argmax(affinity + rng.gumbel(size=affinity.shape), axis=1)  # what they chose
    items = candidates[np.arange(draws), pick]
    liked = affinity[np.arange(draws), pick]
    stars = np.clip(np.rint(3.2 + 1.1 * liked + rng.normal(scale=0.8, size=draws)), 1, 5)
    seconds = rng.integers(0, YEAR_S, size=draws)
    frame = pl.DataFrame({"u": users, "i": items, "stars": stars.astype(np.int8), "s": seconds})
    frame = frame.unique(["u", "i"], keep="first", maintain_order=True).head(n_interactions)
    log = frame.select(
        customer_id=pl.format("c{}", pl.col("u").cast(pl.String).str.zfill(7)),
        sku=pl.format("SKU-{}", pl.col("i").cast(pl.String).str.zfill(6)),
        stars=pl.col("stars"),
        ts=pl.lit(START) + pl.duration(seconds=pl.col("s")),
    )
    genre = np.argmax(profile, axis=1) % len(GENRES)
    catalog = pl.DataFrame({
        "sku": [f"SKU-{i:06d}" for i in range(n_items)],
        "name": [f"{GENRES[g].title()} item {i}" for i, g in enumerate(genre)],
        "description": [f"A {GENRES[g]} product, catalogue number {i}." for i, g in enumerate(genre)],
    })
    return log, catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("shop"))
    args = parser.parse_args()
    log, catalog = example_log(args.interactions, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    log.write_parquet(args.out / "interactions.parquet")
    catalog.write_csv(args.out / "catalog.csv")
    print(f"{log.height} interactions of {log['customer_id'].n_unique()} customers on {log['sku'].n_unique()} items "
          f"-> {args.out / 'interactions.parquet'}, {catalog.height} items -> {args.out / 'catalog.csv'}")


if __name__ == "__main__":
    main()
