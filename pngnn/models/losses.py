"""Pairwise ranking losses and the batch L2 penalty.

BPR (Rendle et al. 2009) with several negatives per pair:

    L = mean_{(u,i), j} softplus(y_uj - y_ui) = mean -ln sigmoid(y_ui - y_uj)

averaged once over pairs and negatives (the classic bug of dividing by the batch
twice is avoided). ``softplus`` is the numerically stable form of -ln sigmoid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pngnn.models.graph import csr_tensor, index_dtype


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """pos_scores [B], neg_scores [B, N] -> mean over B*N of -ln sigmoid(pos - neg)."""
    return F.softplus(neg_scores - pos_scores.unsqueeze(1)).mean()


def l2_penalty(table0: torch.Tensor, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
               tables: int = 1) -> torch.Tensor:
    """(||e_u||^2 + ||e_i||^2 + sum_j ||e_j||^2) / (B * N) over the batch's layer-0 rows.

    ``table0`` is the layer-0 table (users first); ``users`` index it, ``pos`` [B] and
    ``neg`` [B, N] must already be offset to the item rows. ``tables`` > 1: ``table0`` stacks that
    many tables of the same nodes (PN-GNN's [E_p; E_n]) and the batch's rows of each are penalised
    (no slices, whose backward would zero-fill a full-size gradient each).

    Why this scale: the reference code of SiReN/PN-GNN sums the ranking term over the
    N negatives of each pair and adds lambda * (||e_u||^2 + ||e_i||^2 + sum_j ||e_j||^2)
    per pair. Dividing both by B*N keeps that ratio (so the paper's lambda = 0.05 means
    what it meant there) while ``bpr_loss`` stays a readable per-triple mean. Only the
    batch's rows are penalised (penalising the whole table each step is a common bug that
    over-regularises rare items). Rows are weighted by how often they occur in the batch,
    computed with bincounts instead of gathering a [B, N, d] block.
    """
    batch, n_neg = neg.shape
    size = table0.shape[0] // tables
    counts = (counts_of(neg, size) + counts_of(users, size) + counts_of(pos, size)).to(table0.dtype)
    squares = table0.pow(2).sum(1).view(tables, size).sum(0)
    return (counts * squares).sum() / (batch * n_neg)


def counts_of(index: torch.Tensor, size: int) -> torch.Tensor:
    """How often each of 0..size-1 occurs in ``index`` (int64 [size]).

    Not ``torch.bincount``: it sizes its output from the largest value, which on a GPU is a host
    sync every call (the step waits for the device); a scatter into a tensor of known size is
    not, and costs the same on a CPU."""
    flat = index.reshape(-1)
    return torch.zeros(size, dtype=torch.int64, device=index.device).index_add_(
        0, flat, torch.ones(flat.shape[0], dtype=torch.int64, device=index.device))


def sorted_rows(device: torch.device) -> bool:
    """Whether the SDDMM's pattern gets each row's columns sorted: on CUDA, whose cuSPARSE
    kernels take CSR with sorted column indices (MKL on the CPU takes any order, so the CPU path
    skips the sort and stays what it was)."""
    return device.type == "cuda"


class SampledScores(torch.autograd.Function):
    """y[b, j] = u[b] . E[neg[b, j]] for a batch's sampled negatives, without the [B, N, d] gather.

    Why: the gather-and-``bmm`` form materialises B * N embedding rows (4,096 x 40 x 64 floats
    on ML-1M) and its backward scatter-adds them one by one; that was most of a training step
    beside the propagation. Here the sampled columns are the pattern of a CSR matrix S [B, n_items]
    (row b holds neg[b, :], duplicates kept, so every pair counts as often as it was drawn):

    - forward: one sampled dense-dense product (SDDMM, ``torch.sparse.sampled_addmm``) of u and E^T
      on that pattern;
    - backward: with G the same pattern holding dL/dy, dL/du = G @ E and dL/dE = G^T @ u, two
      sparse-dense products; G^T's CSR comes from a stable argsort of the sampled items.

    On CUDA each row's columns are sorted first (``sorted_rows``) and the scores put back in the
    draw's order; repeated columns stay repeated.

    The values and gradients are those of the gather form (tests/test_losses.py checks both, with
    and without the sort).
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, item_emb: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        batch, n_neg = neg.shape
        if n_neg > item_emb.shape[0]:
            # More draws a row than items (toy graphs only): torch's SDDMM then merges a row's
            # repeated columns, so take the gather form, which is cheap at that size.
            ctx.save_for_backward(u, item_emb, neg, None)
            return torch.bmm(F.embedding(neg, item_emb), u.unsqueeze(2)).squeeze(2)
        order = None
        if sorted_rows(u.device):
            neg, order = torch.sort(neg, dim=1, stable=True)
        ctx.save_for_backward(u, item_emb, neg, order)
        pattern = _sample_pattern(neg, item_emb.shape[0], torch.zeros(batch * n_neg, dtype=u.dtype,
                                                                     device=u.device))
        scores = torch.sparse.sampled_addmm(pattern, u, item_emb.T, beta=0.0).values().view(batch, n_neg)
        if order is not None:  # back to the draw's order
            scores = torch.empty_like(scores).scatter_(1, order, scores)
        return scores

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        u, item_emb, neg, order = ctx.saved_tensors
        n_items = item_emb.shape[0]
        batch, n_neg = neg.shape
        if order is not None:  # the gradient in the sorted pattern's order
            grad = grad.gather(1, order)
        flat_grad = grad.reshape(-1).contiguous()
        grad_u = grad_items = None
        if ctx.needs_input_grad[0]:
            grad_u = torch.sparse.mm(_sample_pattern(neg, n_items, flat_grad), item_emb)
        if ctx.needs_input_grad[1]:
            indices = index_dtype(n_items + 1, batch * n_neg)
            flat = neg.reshape(-1).to(indices)  # a 32-bit sort is twice as fast as a 64-bit one
            order = torch.argsort(flat, stable=True)
            crow = torch.zeros(n_items + 1, dtype=indices, device=neg.device)
            torch.cumsum(counts_of(flat, n_items), 0, out=crow[1:])
            rows = torch.div(order, n_neg, rounding_mode="floor").to(indices)
            transposed = csr_tensor(crow, rows, flat_grad[order], (n_items, batch))
            grad_items = torch.sparse.mm(transposed, u)
        return grad_u, grad_items, None


def _sample_pattern(neg: torch.Tensor, n_items: int, values: torch.Tensor) -> torch.Tensor:
    """The CSR matrix [B, n_items] whose row b holds ``values`` at the columns neg[b, :]."""
    batch, n_neg = neg.shape
    indices = index_dtype(n_items + 1, batch * n_neg + 1)
    crow = torch.arange(0, batch * n_neg + 1, n_neg, dtype=indices, device=neg.device)
    return csr_tensor(crow, neg.reshape(-1).to(indices), values, (batch, n_items))


def sampled_scores(u: torch.Tensor, item_emb: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """y_uj [B, N] = u[b] . item_emb[neg[b, j]] (see ``SampledScores``)."""
    return SampledScores.apply(u, item_emb, neg)


def pair_scores(user_emb: torch.Tensor, item_emb: torch.Tensor, users: torch.Tensor, pos: torch.Tensor,
                neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(u, y_ui [B], y_uj [B, N]): dot-product scores of a batch's pairs and negatives.

    ``index_select`` rather than ``[]``: its backward is an index_add, twice as fast on CPU as the
    accumulating index_put of plain indexing."""
    u = user_emb.index_select(0, users)
    pos_scores = (u * item_emb.index_select(0, pos)).sum(-1)
    return u, pos_scores, sampled_scores(u, item_emb, neg)


def dual_bpr_loss(
    pos_scores: torch.Tensor, neg_scores: torch.Tensor, positive: torch.Tensor, b: float, variant: str
) -> torch.Tensor:
    """Dual-BPR over rated pairs (u, i) of both graphs with N sampled unrated items j.

    ``pos_scores`` [B] are y_ui, ``neg_scores`` [B, N] are y_uj, ``positive`` [B] says
    whether (u, i) is an edge of the positive graph (rating > threshold). The paper's
    equation leaves open which term carries the coefficient b; two readings:

    ``"ordered"`` (our reading of the paper: positive > unrated > negative)
        positive pair: -ln sigmoid(y_ui - y_uj)
        negative pair: -ln sigmoid(b * (y_uj - y_ui))
        Disliked items are pushed *below* unrated ones, b > 1 weighting that push.

    ``"siren"`` (SiReN-style sign-aware BPR with a feedback coefficient c(r))
        every pair:    -ln sigmoid(c(r) * y_ui - y_uj),  c = 1 (positive), b (negative)
        A disliked item still counts as "seen beats unseen"; with b > 1 its own score
        needs less to clear the margin, so it ranks below liked items of the same score.

    ``"sign"`` (SiReN's reference code: the sign of r - threshold)
        every pair:    -ln sigmoid(sign(r) * y_ui - y_uj)   (b unused)
        A disliked pair pushes y_ui towards -y_uj: below zero, below unseen items.

    The loss is the mean over all B * N triples.
    """
    pos = pos_scores.unsqueeze(1)
    is_pos = positive.unsqueeze(1)
    if variant == "ordered":
        margin = torch.where(is_pos, pos - neg_scores, b * (neg_scores - pos))
    elif variant == "siren":
        coeff = torch.where(is_pos, torch.ones_like(pos), torch.full_like(pos, b))
        margin = coeff * pos - neg_scores
    elif variant == "sign":
        margin = torch.where(is_pos, pos, -pos) - neg_scores
    else:
        raise ValueError(f"unknown Dual-BPR variant {variant!r}; use 'ordered', 'siren' or 'sign'")
    return F.softplus(-margin).mean()


def branch_bpr_loss(pos_scores_p: torch.Tensor, neg_scores_p: torch.Tensor, pos_scores_n: torch.Tensor,
                    neg_scores_n: torch.Tensor, positive: torch.Tensor, b: float) -> torch.Tensor:
    """Dual-BPR, ``"branch"`` reading: each graph's pairs ranked with its own branch's embeddings.

    The paper writes Dual-BPR over the two graphs separately, and PANE-GNN's code (which the paper
    cites) applies it that way: for a rated pair (u, i) with N unrated items j,

        liked pair (positive graph):     -ln sigmoid(y^p_ui - y^p_uj),        y^p = z^p_u . z^p_i
        disliked pair (negative graph):  -ln sigmoid(y^n_uj - b * y^n_ui),    y^n = z^n_u . z^n_i

    so the positive branch learns "liked beats unrated" and the negative branch "unrated beats
    disliked", b weighting the disliked item's own score. The fused embedding, which ranks at
    inference, enters neither term: the attention gets no gradient under this reading and stays
    at its initial 1/2-1/2 (why the readings above score with the fused embedding instead).
    ``*_p`` are scores on the positive branch, ``*_n`` on the negative one, each [B] and [B, N];
    ``positive`` [B] says which graph each pair belongs to. Mean over all B * N triples.
    """
    is_pos = positive.unsqueeze(1)
    liked = pos_scores_p.unsqueeze(1) - neg_scores_p
    disliked = neg_scores_n - b * pos_scores_n.unsqueeze(1)
    return F.softplus(-torch.where(is_pos, liked, disliked)).mean()


def graded_bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor, disliked_scores: torch.Tensor,
                    has_disliked: torch.Tensor, b: float) -> torch.Tensor:
    """Dual-BPR, ``"graded"`` reading: liked > unrated, and liked > disliked (weight b).

    For a positive pair (u, i) with N unrated items j and one item k that u disliked
    (rated at or below the threshold)::

        L = mean_{(u,i), j} -ln sigmoid(y_ui - y_uj)  +  b * mean_{(u,i), k} -ln sigmoid(y_ui - y_uk)

    Why: the readings that rank disliked items against *unrated* ones both hurt here.
    Pushing them below unrated items ("ordered") teaches that what u watched is unlikely
    to be watched, and counting them as positives ("siren", b = 1) teaches "watched", not
    "liked" (see README, PN-GNN ablation). This reading never ranks k against j: the
    negative feedback only orders items *within* what the user watched, which is exactly
    where a liked test item competes with a disliked one. b >= 1 weights that feedback.
    ``has_disliked`` [B] masks users without a disliked item.
    """
    loss = bpr_loss(pos_scores, neg_scores)
    if b > 0 and bool(has_disliked.any()):
        graded = F.softplus(disliked_scores - pos_scores)[has_disliked]
        loss = loss + b * graded.mean()
    return loss


def weighted_bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor, disliked_scores: torch.Tensor,
                      has_disliked: torch.Tensor, b: float) -> torch.Tensor:
    """Dual-BPR, ``"weighted"`` reading: liked > unrated, and disliked > unrated with weight 1/b.

    For a positive pair (u, i) with N unrated items j and one item k that u disliked
    (rated at or below the threshold)::

        L = mean_{(u,i), j} -ln sigmoid(y_ui - y_uj)  +  1/b * mean_{(u,k), j} -ln sigmoid(y_uk - y_uj)

    Both graphs' triples are ranked with the fused embedding, and b > 1 is the
    feedback-aware coefficient: a disliked item still says "u chose to watch this", so it
    ranks above unseen items, but counts 1/b as much as a liked one. b = 1 treats
    disliked and liked alike ("watched"); b -> infinity drops the negative graph's triples.
    Why not the readings that push disliked items *down* (``ordered``, ``sign``,
    ``graded``): on MovieLens those cost recall, because an item a user watched and rated
    3 is evidence for what else that user will watch and like (README, PN-GNN ablation).
    The j of each pair serve both terms (one [B, N] gather); ``has_disliked`` [B] masks
    users without a disliked item.
    """
    if b <= 0:
        raise ValueError(f"the weighted Dual-BPR reading needs b > 0 (disliked triples weigh 1/b), got {b}")
    loss = bpr_loss(pos_scores, neg_scores)
    # The mean over the rows that have a disliked item, as a masked sum: no boolean indexing, whose
    # data-dependent size would make a GPU wait for the host every batch (0 when no row has one).
    rows = has_disliked.to(neg_scores.dtype).unsqueeze(1)
    watched = (F.softplus(neg_scores - disliked_scores.unsqueeze(1)) * rows).sum()
    return loss + watched / (rows.sum() * neg_scores.shape[1]).clamp(min=1) / b
