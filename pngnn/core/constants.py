"""Numbers and names the whole project agrees on, written once.

A value lives here when more than one module (or the command line and a flow) needs the
same one: a second copy could drift, and then two paths through the code would compute
different things under the same name.
"""

from __future__ import annotations

from typing import Literal

# A rating above this means "liked": it splits PN-GNN's positive and negative graphs, picks
# the ground truth of evaluation and the liked/disliked history shown to the LLM.
# The rule at the threshold itself (a 3.5, which ML-10M and later's half stars have): liked
# means strictly above, so a 3.5 is disliked, everywhere: it goes to the negative graph, can be
# the disliked item of Dual-BPR, is no ground truth in evaluation and shows as disliked to the
# LLM. One rule for training and evaluation, so a model is never trained to push up items
# the evaluation does not count as hits; and it keeps ML-100K/1M (integer stars) exactly as
# before, where "> 3.5" and ">= 4" are the same set.
LIKE_THRESHOLD = 3.5

# Ranking metrics, each reported at every cut-off: "<name>@<k>", e.g. "recall@20".
KS: tuple[int, ...] = (5, 10, 15, 20)
METRIC_NAMES: tuple[str, ...] = ("precision", "recall", "ndcg")
METRICS: tuple[str, ...] = tuple(f"{m}@{k}" for m in METRIC_NAMES for k in KS)
# The metrics of the paper's Table 1 (P@K and R@K), which the results tables show.
TABLE_METRICS: tuple[str, ...] = ("precision", "recall")
# What a tuning study maximises unless asked otherwise.
TUNE_METRIC = "ndcg@20"

# The embedded LLM's name, as its llama.cpp server serves it and as the LLM cache records it.
LOCAL_LLM_MODEL = "smollm2-135m-instruct"

# The main job's methods (`pngnn run`, the pipeline flow; `pngnn run --help` names them): the
# baselines a practitioner would compare against (most-popular, EASE, iALS, LightGCN), our PN
# models (PN-EASE, weighted-ease, PN-GNN), and PN-GNN on LLM-augmented graphs.
DEFAULT_METHODS = ("mostpop", "ease", "ials", "lightgcn", "pngnn", "pn-ease", "weighted-ease", "llm-pngnn")

# The profile the LLM's candidate LightGCN trains with unless a run names another
# (LLMSettings.candidates_profile); an augmentation record of another ranker is filed apart.
DEFAULT_RANKER = "quick"

# Users the LLM is asked about per split, by default: one number for every command, flow and
# deployment (PNGNN_LLM_USERS or --users / --llm-users change it), small enough for the embedded
# CPU model to answer in a couple of minutes. The results' LLM rows ask for more, explicitly
# (`pngnn augment --users 600`).
LLM_USERS = 20
# Prompts one scheduled re-augmentation may send (pngnn.augment.incremental): coverage grows by this
# much a run at most, at a cost known in advance.
REAUGMENT_LLM_BUDGET = 100
# The validation part a re-augmentation carves when its profile has none: promotion is decided there.
REAUGMENT_VALID_FRACTION = 0.1
# Which users come first when only some are asked: the fewest train ratings (the sparsity the
# LLM step is meant to relieve), or a seeded random sample (the same users on every split).
UserOrder = Literal["sparsest", "random"]
USER_ORDERS: tuple[UserOrder, ...] = ("sparsest", "random")

# Epochs between training checkpoints (pngnn.training.checkpoints): a kill loses at most this many.
# Not a TrainConfig field: it changes no result, so it is no part of a run's settings.
CHECKPOINT_EVERY = 5

# LLM augmentation: a split whose prompts are more than this share without a usable answer
# fails (``pngnn.augment.pipeline.check_failures``): the few edges left would pass for an
# LLM-augmented graph.
DEFAULT_MAX_FAILED_SHARE = 0.5
