"""The application: the ``pngnn`` command line and the workflows it runs (training runs, tuning, what-if).

Owns ``cli`` and ``cli_options`` (typer commands and their shared options), ``train_runs``
(``pngnn train`` over seeds, tracked or not), ``tune`` and ``study`` (validation-only Optuna
studies saved as profiles), ``whatif`` (the simulated-answerer sweep) and ``parent_records``
(what a flow's parent run logs). The Prefect tasks in ``tasks/`` call into this layer and
the ones below; nothing in ``pngnn`` imports Prefect, ``tasks`` or ``flows``. May import every
other layer.
"""
