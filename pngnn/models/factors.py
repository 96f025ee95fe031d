"""What a trained model hands to serving: its scores as plain arrays, no torch module.

Every model here scores a user against all items in one linear form,

    s(u, ·) = x_u W + b

* LightGCN, PN-GNN, iALS: x_u is the user's final (propagated) embedding, W the item
  embeddings transposed, b absent;
* EASE, PN-EASE: x_u is the user's sparse input row (their training ratings, PN-EASE's
  liked and disliked columns side by side), W the item-item weights;
* MostPopular: x_u is empty (width 0), b the items' popularity.

So one set of arrays and one matrix product serve every method, and the registry stores
numbers that any NumPy can read, not a pickled graph module. Torch-free on purpose: the
served model imports this module and needs only NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CsrRows:
    """Sparse rows (CSR): row r holds ``cols[indptr[r]:indptr[r + 1]]`` with those ``values``
    (all ones when ``values`` is None, as for a seen-item index)."""

    indptr: np.ndarray  # int64 [n_rows + 1]
    cols: np.ndarray  # int64 [nnz]
    values: np.ndarray | None  # float32 [nnz] or None
    width: int

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, n_rows: int, width: int,
                   values: np.ndarray | None = None) -> CsrRows:
        """From (row, col[, value]) pairs in any order."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
        vals = None if values is None else np.asarray(values, dtype=np.float32)[order]
        return cls(indptr, np.asarray(cols, dtype=np.int64)[order], vals, int(width))

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(block row, position in ``cols``) of every entry of ``rows``, vectorised."""
        starts, stops = self.indptr[rows], self.indptr[rows + 1]
        lengths = stops - starts
        block_rows = np.repeat(np.arange(len(rows)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return block_rows, np.repeat(starts, lengths) + offsets

    def counts(self, rows: np.ndarray) -> np.ndarray:
        return np.diff(self.indptr)[rows]

    def dense(self, rows: np.ndarray) -> np.ndarray:
        """The rows as a dense float32 block [len(rows), width]."""
        out = np.zeros((len(rows), self.width), dtype=np.float32)
        block_rows, pos = self.entries(rows)
        out[block_rows, self.cols[pos]] = 1.0 if self.values is None else self.values[pos]
        return out


@dataclass(frozen=True)
class ScoreFactors:
    """s(u, ·) = x_u W + b for every user u (see the module docstring)."""

    users: np.ndarray | CsrRows  # x: dense [n_users, d] or sparse rows of width d
    item_weights: np.ndarray  # W: float32 [d, n_items], or [d, len(item_index)]
    item_bias: np.ndarray | None = None  # b: float32, one per column of W
    # A model fitted on some items only (``ease_max_items``): the catalogue item of each column of W,
    # and the catalogue's size; the other items score -inf. Kept compact because the full
    # [d, n_items] matrix is mostly zeros at scale (20k kept of 74k items: 5.9 GB of them).
    item_index: np.ndarray | None = None
    catalogue_size: int | None = None

    @property
    def n_users(self) -> int:
        return self.users.n_rows if isinstance(self.users, CsrRows) else len(self.users)

    @property
    def n_items(self) -> int:
        if self.item_index is not None and self.catalogue_size is not None:
            return self.catalogue_size
        return self.item_weights.shape[1]

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Scores of the users at ``rows`` against every item, float32 [len(rows), n_items]."""
        x = self.users.dense(rows) if isinstance(self.users, CsrRows) else self.users[rows]
        out = x @ self.item_weights
        if self.item_bias is not None:
            out += self.item_bias
        if self.item_index is None:
            return out
        full = np.full((len(out), self.n_items), -np.inf, dtype=np.float32)
        full[:, self.item_index] = out
        return full
