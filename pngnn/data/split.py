"""Random train/test splits of the ratings, stored in DuckDB, and their loading.

The draw is a seeded numpy permutation over ratings in (user_id, item_id) order, so a
seed gives the same split on any machine and any DuckDB version. An optional validation
part is carved out of train for early stopping; the test part is never looked at
during training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from pngnn.core.config import SplitProtocol
from pngnn.core.errors import PngnnError
from pngnn.data.protocols import check_protocol, last_parts, temporal_parts
from pngnn.data.store import Store


@dataclass(frozen=True)
class Interactions:
    """Rated (user, item) pairs as dense indices."""

    users: np.ndarray  # int64
    items: np.ndarray  # int64
    ratings: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.users)

    def select(self, mask: np.ndarray) -> Interactions:
        return Interactions(self.users[mask], self.items[mask], self.ratings[mask])

    def concat(self, *others: Interactions) -> Interactions:
        """These pairs followed by the others' (train + validation, train + LLM edges, ...)."""
        parts = (self, *others)
        return Interactions(
            np.concatenate([p.users for p in parts]),
            np.concatenate([p.items for p in parts]),
            np.concatenate([p.ratings for p in parts]),
        )

    def digest(self) -> str:
        """A hash of exactly these rows, in this order (two fits from the same rows can share work)."""
        h = hashlib.sha256()
        for column in (self.users, self.items, self.ratings):
            h.update(np.ascontiguousarray(column).tobytes())
            h.update(str(column.dtype).encode())
        return h.hexdigest()

    def positive(self, threshold: float) -> Interactions:
        return self.select(self.ratings > threshold)

    def negative(self, threshold: float) -> Interactions:
        return self.select(self.ratings <= threshold)


@dataclass(frozen=True)
class SplitData:
    """One split of one dataset, ready for training and evaluation."""

    dataset: str
    seed: int
    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions
    test: Interactions
    # LLM-augmented edges merged for this split (ratings 5.0 like / 1.0 dislike), if loaded.
    augmented: Interactions | None = None
    # Where the split came from, as stored (``load_split``): the dataset's checksum (sha256 over
    # its files' published sums) and the split's test and validation fractions. A tracked run
    # records them as its dataset input (``pngnn.data.lineage``); None for a split built by hand.
    checksum: str | None = None
    fractions: tuple[float, float] | None = None
    # How it was drawn (pngnn.data.protocols): "random", "temporal" or "last"; last_n for "last".
    protocol: str = "random"
    last_n: int | None = None
    # A user's own dataset (pngnn.data.user_data): its like threshold (None: MovieLens, the training
    # settings' threshold), whether it is implicit (every interaction a like), where it came from.
    like_threshold: float | None = None
    implicit: bool = False
    source: str | None = None

    def with_augmented(self, positive: Interactions, negative: Interactions) -> SplitData:
        return replace(self, augmented=positive.concat(negative))

    def augmented_digest(self) -> dict[str, int | str]:
        """How many LLM edges this split trains on, and a hash of exactly which ones: what a
        run records, so two runs that name the same LLM can be checked to share the same edges."""
        edges = self.augmented
        if edges is None:
            return {}
        order = np.lexsort((edges.ratings, edges.items, edges.users))
        digest = hashlib.sha256()
        for column, dtype in ((edges.users, np.int64), (edges.items, np.int64), (edges.ratings, np.float32)):
            digest.update(np.ascontiguousarray(column[order], dtype=dtype).tobytes())
        return {"llm_edges": len(edges), "llm_edges_sha256": digest.hexdigest()[:16]}


def draw_parts(n: int, seed: int, test_fraction: float, valid_fraction: float) -> np.ndarray:
    """Assign each of n ratings to 'train', 'valid' or 'test' with a seeded permutation."""
    if not 0 < test_fraction < 1 or not 0 <= valid_fraction < 1:
        raise PngnnError(
            f"test fraction {test_fraction} and validation fraction {valid_fraction} must lie in (0, 1) "
            "and [0, 1); pick fractions such as 0.2 and 0.1"
        )
    order = np.random.default_rng(seed).permutation(n)
    n_test = round(n * test_fraction)
    n_valid = round((n - n_test) * valid_fraction)
    parts = np.full(n, "train", dtype=object)
    parts[order[:n_test]] = "test"
    parts[order[n_test : n_test + n_valid]] = "valid"
    return parts


def create_split(
    store: Store,
    dataset: str,
    seed: int,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.0,
    force: bool = False,
    protocol: SplitProtocol = "random",
    last_n: int = 1,
) -> dict[str, int]:
    """Create (or reuse) the split for ``seed`` by ``protocol`` (``pngnn.data.protocols``); returns its
    part sizes. A stored split of the same seed made another way is replaced."""
    check_protocol(protocol, last_n)
    meta = store.query_sql(
        "SELECT * FROM split_meta WHERE dataset = $dataset AND seed = $seed", dataset=dataset, seed=seed
    )
    if (
        not force
        and meta.height
        and meta["test_fraction"][0] == test_fraction
        and meta["valid_fraction"][0] == valid_fraction
        and (meta["protocol"][0] or "random") == protocol
        and (protocol != "last" or meta["last_n"][0] == last_n)
    ):
        return {k: int(meta[f"n_{k}"][0]) for k in ("train", "valid", "test")}
    n = store.scalar("SELECT count(*) FROM ratings WHERE dataset = $dataset", dataset=dataset)
    if not n:
        raise PngnnError(f"no ratings for dataset '{dataset}' in {store.path}; run `pngnn ingest {dataset}` first")
    parts = draw_parts(int(n), seed, test_fraction, valid_fraction)  # checks the fractions for every protocol
    if protocol != "random":
        # the same (user_id, item_id) order as the draw's rn in split.sql
        rows = store.query_sql("SELECT user_id, item_id, ts FROM ratings WHERE dataset = $dataset "
                               "ORDER BY user_id, item_id", dataset=dataset)
        ts = rows["ts"].to_numpy()
        parts = (temporal_parts(ts, test_fraction, valid_fraction) if protocol == "temporal" else
                 last_parts(rows["user_id"].to_numpy(), rows["item_id"].to_numpy(), ts, last_n, valid_fraction > 0))
    counts = {k: int((parts == k).sum()) for k in ("train", "valid", "test")}
    if counts["train"] == 0 or counts["test"] == 0:
        raise PngnnError(
            f"split of {dataset} (seed {seed}) would leave an empty part {counts}; use a larger dataset or "
            "fractions that leave ratings in train and test"
        )
    draw = pl.DataFrame({"rn": np.arange(n, dtype=np.int64), "part": parts.astype(str)})
    store.register("draw", draw)
    try:
        with store.transaction():
            store.run_file(
                "split",
                dataset=dataset,
                seed=seed,
                test_fraction=test_fraction,
                valid_fraction=valid_fraction,
                protocol=protocol,
                last_n=last_n if protocol == "last" else None,
            )
    finally:
        store.unregister("draw")
    return counts


def load_split(store: Store, dataset: str, seed: int) -> SplitData:
    """Read a stored split as dense index arrays (no per-row Python)."""
    sizes = store.query_sql(
        "SELECT n_users, n_items, checksum, like_threshold, implicit, source FROM datasets WHERE dataset = $dataset",
        dataset=dataset
    )
    if not sizes.height:
        raise PngnnError(f"dataset '{dataset}' is not in {store.path}; run `pngnn ingest {dataset}` first")
    frame = store.query_file("load_split", dataset=dataset, seed=seed)
    if frame.is_empty():
        raise PngnnError(
            f"split seed {seed} of '{dataset}' is not in {store.path}; run `pngnn split {dataset} --seed {seed}`"
        )
    meta = store.query_sql("SELECT test_fraction, valid_fraction, protocol, last_n FROM split_meta "
                           "WHERE dataset = $dataset AND seed = $seed", dataset=dataset, seed=seed)
    parts = {}
    for part in ("train", "valid", "test"):
        sub = frame.filter(pl.col("part") == part)
        parts[part] = Interactions(
            sub["user_idx"].to_numpy().astype(np.int64),
            sub["item_idx"].to_numpy().astype(np.int64),
            sub["rating"].to_numpy().astype(np.float32),
        )
    return SplitData(
        dataset=dataset,
        seed=seed,
        n_users=int(sizes["n_users"][0]),
        n_items=int(sizes["n_items"][0]),
        **parts,
        checksum=str(sizes["checksum"][0]),
        fractions=(float(meta["test_fraction"][0]), float(meta["valid_fraction"][0])) if meta.height else None,
        protocol=str(meta["protocol"][0] or "random") if meta.height else "random",
        last_n=int(meta["last_n"][0]) if meta.height and meta["last_n"][0] is not None else None,
        like_threshold=sizes["like_threshold"][0],
        implicit=bool(sizes["implicit"][0]),
        source=sizes["source"][0],
    )
