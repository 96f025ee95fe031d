"""Recommender models and their maths: graphs, propagation, losses, negative samplers, every model.

Owns ``graph`` (bipartite adjacency, normalisation, sparse propagation), ``losses`` (BPR and
the Dual-BPR readings), ``sampling`` (deg^0.75 negatives, pair orders), and the models behind
one interface (after RecBole): every model exposes ``calculate_loss`` for a training batch,
``full_sort_predict`` to score all items for a block of users, ``final_embeddings`` (the
propagated user and item tables, so evaluation propagates once) and ``score_factors`` (the
scores as plain arrays, ``pngnn.models.factors``: what the registered model serves). May import
``pngnn.evaluation``, ``pngnn.data`` and ``pngnn.core``.
"""
