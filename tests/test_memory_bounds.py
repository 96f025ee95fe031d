"""Nothing of size users x items on a big catalogue: evaluation's blocks are bounded in cells and
give the metrics of one block; the sampler's rated lookup builds no bitmap at ML-20M's size."""

from __future__ import annotations

import tracemalloc

import numpy as np
import torch

from pngnn.data.split import Interactions
from pngnn.evaluation.evaluate import MAX_SCORE_CELLS, block_rows, evaluate
from pngnn.models.sampling import NegativeSampler

# ML-20M: 138,493 users who rated 26,744 items.
ML20M_USERS, ML20M_ITEMS = 138_493, 26_744


def random_case(n_users: int = 53, n_items: int = 31, seed: int = 0) -> tuple[torch.Tensor, Interactions, Interactions]:
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(rng.standard_normal((n_users, n_items)).astype(np.float32))
    cells = rng.permutation(n_users * n_items)[: n_users * n_items // 3]
    users, items = cells // n_items, cells % n_items
    ratings = rng.choice(np.arange(1, 11) / 2, size=len(cells)).astype(np.float32)  # half stars, 3.5 included
    part = rng.random(len(cells)) < 0.7
    seen = Interactions(users[part], items[part], ratings[part])
    test = Interactions(users[~part], items[~part], ratings[~part])
    return scores, seen, test


class ShapeRecorder:
    def __init__(self, scores: torch.Tensor) -> None:
        self.scores, self.shapes = scores, []

    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        out = self.scores[users]
        self.shapes.append(tuple(out.shape))
        return out


def test_blocks_give_the_metrics_of_one_block_and_bound_the_score_matrix():
    scores, seen, test = random_case()
    n_items = scores.shape[1]
    one = ShapeRecorder(scores)
    whole = evaluate(one, n_items, seen, test, ks=(1, 5, 10), segments=True)
    assert len(one.shapes) == 1 and one.shapes[0][0] == whole["n_eval_users"]  # every user in one block
    assert whole["recall@10"] > 0  # a case with hits, so equality below means something
    for block, max_cells in [(7, MAX_SCORE_CELLS), (2048, 3 * n_items + 5), (2048, 1)]:
        rec = ShapeRecorder(scores)
        blocked = evaluate(rec, n_items, seen, test, ks=(1, 5, 10), segments=True, block=block, max_cells=max_cells)
        assert blocked == whole
        rows = block_rows(n_items, block, max_cells)
        assert rows == min(block, max(1, max_cells // n_items))
        assert max(s[0] for s in rec.shapes) == rows  # the largest matrix the scorer returns
        assert all(s[1] == n_items for s in rec.shapes)
        assert sum(s[0] for s in rec.shapes) == whole["n_eval_users"]


def test_block_rows_on_movielens_sizes():
    assert block_rows(1_682) == 2048 and block_rows(3_706) == 2048  # ML-100K, ML-1M: as before
    rows = block_rows(ML20M_ITEMS)
    assert rows == 313
    assert rows * ML20M_ITEMS <= MAX_SCORE_CELLS
    assert 2 * rows * ML20M_ITEMS * 4 < 70 * 2**20  # scores + masked copy, float32: < 70 MiB
    assert block_rows(10 * MAX_SCORE_CELLS) == 1  # a catalogue wider than the budget: one user a block


def test_the_sampler_builds_no_users_x_items_bitmap_at_ml20m_size():
    rng = np.random.default_rng(0)
    n = 20_000
    users = rng.integers(0, ML20M_USERS, n)
    items = rng.integers(0, ML20M_ITEMS, n)
    tracemalloc.start()
    try:
        sampler = NegativeSampler(users, items, ML20M_USERS, ML20M_ITEMS, seed=1)
        neg = sampler.sample(users, 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not sampler.lookup.dense
    assert peak < 32 * 2**20  # a bitmap would be 3.7 GB; the keys and draws are a few MB
    assert neg.shape == (n, 10)
    assert not sampler.lookup.contains(np.repeat(users, 10), neg.ravel()).any()
