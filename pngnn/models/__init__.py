"""Recommender models sharing one interface (after RecBole).

Every model exposes ``calculate_loss`` for a training batch, ``full_sort_predict`` to
score all items for a block of users, and ``final_embeddings`` (the propagated user and
item tables) so evaluation propagates once, not once per user block, and ``score_factors``
(the scores as plain arrays, ``pngnn.models.factors``: what the registered model serves).
"""
