"""Full-ranking evaluation and what is made of its numbers: metrics, segments, results, reports.

Owns ``metrics`` (pure P/R/NDCG@K), ``evaluate`` (rank every item, mask train, score the
test part), ``segments`` (users by activity, long-tail items), ``results`` (the run records
under ``results/``), ``report`` and ``tables`` (tables and charts of runs, the paper's rows). It
never sees a model class: it scores through a scorer function. May import ``pngnn.data`` and
``pngnn.core``.
"""
