"""Fitting a method to a split: the graph training loop, checkpoints, devices, the method registry.

Owns ``train`` (the mini-batch loop of LightGCN and PN-GNN, early stopping on validation),
``checkpoints`` (resume after a kill), ``device`` (CPU or CUDA), ``methods`` (every method's
name, the settings it reads and how it is trained: graph, closed form, iALS) and ``outcome``
(train one method on one split, evaluate it on test: ``RunOutcome``). May import
``pngnn.models``, ``pngnn.evaluation``, ``pngnn.data`` and ``pngnn.core``.
"""
