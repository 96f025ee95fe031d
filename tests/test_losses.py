"""BPR loss and the batch L2 penalty against explicit formulas."""

from __future__ import annotations

import math

import pytest
import torch

from pngnn.models import losses
from pngnn.models.losses import bpr_loss, l2_penalty, pair_scores, sampled_scores


def test_bpr_loss_by_hand():
    pos = torch.tensor([2.0, 0.0])
    neg = torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 4.0]])
    # -log(sigmoid(pos - neg)) for each of the 2 x 3 triples, averaged once over all six
    diffs = [2 - 1, 2 - 3, 2 - 2, 0 - 0, 0 - (-1), 0 - 4]
    expected = sum(-math.log(1 / (1 + math.exp(-x))) for x in diffs) / 6
    assert bpr_loss(pos, neg).item() == pytest.approx(expected, rel=1e-6)
    ref = -torch.log(torch.sigmoid(pos.unsqueeze(1) - neg)).mean()
    assert torch.allclose(bpr_loss(pos, neg), ref)


def test_bpr_loss_equal_scores_is_log2():
    # sigmoid(0) = 1/2 -> -log(1/2) = log 2 for every triple
    assert bpr_loss(torch.zeros(4), torch.zeros(4, 5)).item() == pytest.approx(math.log(2))


def test_bpr_loss_stable_for_large_margins():
    pos = torch.tensor([100.0, -100.0])
    neg = torch.tensor([[0.0], [0.0]])
    # triple 1: -log sigmoid(100) ~ e^-100 ~ 0; triple 2: -log sigmoid(-100) ~ 100
    out = bpr_loss(pos, neg)
    assert torch.isfinite(out)
    assert out.item() == pytest.approx((0.0 + 100.0) / 2, rel=1e-6)


def test_bpr_gradient_sign():
    pos = torch.tensor([0.5], requires_grad=True)
    neg = torch.tensor([[0.2, 0.9]], requires_grad=True)
    bpr_loss(pos, neg).backward()
    assert pos.grad.item() < 0  # raising the positive score lowers the loss
    assert (neg.grad > 0).all()


def test_l2_penalty_matches_explicit_gathers():
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(12, 4, generator=gen, dtype=torch.float64)  # 5 users, 7 items
    n_users = 5
    users = torch.tensor([0, 3, 3])  # user 3 twice
    pos = torch.tensor([1, 1, 6]) + n_users  # item 1 twice
    neg = torch.tensor([[2, 1], [0, 0], [6, 5]]) + n_users  # item 0 twice, items 1 and 6 also positives
    batch, n_neg = neg.shape
    # (sum_b ||e_u||^2 + ||e_i||^2 + sum_j ||e_j||^2) / (B * N), with every occurrence counted
    expected = (table[users].pow(2).sum() + table[pos].pow(2).sum() + table[neg.reshape(-1)].pow(2).sum()) / (
        batch * n_neg
    )
    got = l2_penalty(table, users, pos, neg)
    torch.testing.assert_close(got, expected)
    # the rows outside the batch do not matter
    table2 = table.clone()
    table2[4] += 100.0  # user 4 is not in the batch
    torch.testing.assert_close(l2_penalty(table2, users, pos, neg), expected)


def test_l2_penalty_small_case_by_hand():
    # table rows: u0 = (1, 0), i0 = (0, 2), i1 = (1, 1)
    table = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    users = torch.tensor([0])
    pos = torch.tensor([1])
    neg = torch.tensor([[2, 2]])
    # (||u0||^2 + ||i0||^2 + 2 ||i1||^2) / (1 * 2) = (1 + 4 + 2 * 2) / 2 = 4.5
    assert l2_penalty(table, users, pos, neg).item() == pytest.approx(4.5)


def test_l2_penalty_gradient_only_on_batch_rows():
    table = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    l2_penalty(table, torch.tensor([0]), torch.tensor([3]), torch.tensor([[4, 4]])).backward()
    touched = table.grad.abs().sum(1) > 0
    assert touched.tolist() == [True, False, False, True, True, False]
    # d/de_j of 2 ||e_j||^2 / 2 = 2 e_j for the negative drawn twice
    torch.testing.assert_close(table.grad[4], 2 * table.detach()[4])


def test_pair_scores_are_dot_products():
    gen = torch.Generator().manual_seed(2)
    user_emb = torch.randn(3, 4, generator=gen)
    item_emb = torch.randn(5, 4, generator=gen)
    users = torch.tensor([2, 0])
    pos = torch.tensor([1, 4])
    neg = torch.tensor([[0, 3, 3], [2, 1, 0]])
    u, pos_s, neg_s = pair_scores(user_emb, item_emb, users, pos, neg)
    torch.testing.assert_close(u, user_emb[users])
    torch.testing.assert_close(pos_s, torch.stack([user_emb[2] @ item_emb[1], user_emb[0] @ item_emb[4]]))
    expected_neg = torch.tensor([[float(user_emb[users[b]] @ item_emb[neg[b, n]]) for n in range(3)] for b in range(2)])
    torch.testing.assert_close(neg_s, expected_neg)


def gather_scores(u: torch.Tensor, item_emb: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """The formulation the fused scores replaced: gather [B, N, d] rows, then a batched product."""
    return torch.bmm(torch.nn.functional.embedding(neg, item_emb), u.unsqueeze(2)).squeeze(2)


@pytest.mark.parametrize("sort_rows", [False, True], ids=["as drawn (CPU)", "rows sorted (CUDA's path)"])
def test_sampled_scores_match_the_gather_form_in_value_and_gradient(monkeypatch, sort_rows):
    """With the rows as drawn (the CPU's path) and sorted (CUDA's, forced here on the CPU): the
    scores come back in the draw's order and the gradients are the gather form's."""
    monkeypatch.setattr(losses, "sorted_rows", lambda device: sort_rows)
    gen = torch.Generator().manual_seed(5)
    u = torch.randn(6, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    items = torch.randn(9, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    # Row 0 draws item 3 three times, item 8 (the last) appears, item 5 never does.
    neg = torch.tensor([[3, 3, 3, 8], [0, 1, 2, 4], [8, 7, 6, 0], [1, 1, 0, 2], [4, 6, 7, 8], [2, 0, 3, 1]])
    weights = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    fused = sampled_scores(u, items, neg)
    (fused * weights).sum().backward()
    grads = u.grad.clone(), items.grad.clone()
    u.grad = items.grad = None
    reference = gather_scores(u, items, neg)
    (reference * weights).sum().backward()
    torch.testing.assert_close(fused, reference)
    torch.testing.assert_close(grads[0], u.grad)
    torch.testing.assert_close(grads[1], items.grad)
    assert float(grads[1][5].abs().sum()) == 0.0  # never drawn: no gradient
    assert torch.autograd.gradcheck(sampled_scores, (u.detach().requires_grad_(), items.detach().requires_grad_(), neg))


def test_counts_of_is_bincount_without_sizing_from_the_data():
    gen = torch.Generator().manual_seed(7)
    index = torch.randint(0, 50, (13, 7), generator=gen)
    torch.testing.assert_close(losses.counts_of(index, 60), torch.bincount(index.reshape(-1), minlength=60))
    assert losses.counts_of(torch.zeros(0, dtype=torch.int64), 4).tolist() == [0, 0, 0, 0]


def test_sampled_scores_with_more_draws_a_row_than_items():
    gen = torch.Generator().manual_seed(6)
    u = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    items = torch.randn(2, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    neg = torch.randint(0, 2, (3, 5), generator=gen)
    torch.testing.assert_close(sampled_scores(u, items, neg), gather_scores(u, items, neg))
    assert torch.autograd.gradcheck(sampled_scores, (u, items, neg))


def test_l2_penalty_over_stacked_tables_is_the_sum_of_each_tables_penalty():
    gen = torch.Generator().manual_seed(8)
    first, second = torch.randn(7, 3, generator=gen), torch.randn(7, 3, generator=gen)
    users, pos, neg = torch.tensor([0, 2, 2]), torch.tensor([4, 5, 6]), torch.tensor([[3, 6], [6, 6], [4, 3]])
    stacked = l2_penalty(torch.cat([first, second]), users, pos, neg, tables=2)
    torch.testing.assert_close(stacked, l2_penalty(first, users, pos, neg) + l2_penalty(second, users, pos, neg))
