"""MLflow: runs, the model registry, the served pyfunc model and ``recommend``.

Owns everything that talks to a tracking server: ``runs`` (parent and child runs, logged
metrics, plots and inputs, stale runs closed), ``registry`` (versions and the production
alias), ``pyfunc``/``pyfunc_model`` (the model MLflow serves), ``serving`` (the arrays it
serves from, NumPy only), ``recommend`` (top-k for users from a registered model) and ``urls``
(the UI addresses printed, in the model-training view). May import
every layer below it: ``pngnn.augment``, ``pngnn.training``, ``pngnn.models``,
``pngnn.evaluation``, ``pngnn.data``, ``pngnn.core``.
"""
