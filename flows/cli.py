"""The installed ``pngnn`` command: the library's commands (``pngnn.app.cli``) plus ``run``, which
starts the Prefect pipeline flow. It lives here, beside the flows, so ``pngnn/`` never
imports Prefect."""

from __future__ import annotations

from typing import Annotated

import typer

from pngnn.app import cli_options as opt
from pngnn.app.cli import app, command
from pngnn.core.constants import DEFAULT_METHODS
from pngnn.core.profiles import get_profile
from pngnn.core.settings import Settings, llm_settings, quiet_environment


@command("run")
def run_cmd(
    profile: opt.ProfileName = "quick",
    dataset: opt.ProfileDataset = None,
    seed: opt.ProfileSeeds = None,
    method: Annotated[list[str] | None, typer.Option(help="Methods, repeatable; default: "
                                                          f"{', '.join(DEFAULT_METHODS)}.")] = None,
    epochs: opt.Epochs = None,
    llm_users: Annotated[int | None, opt.llm_option("users")] = None,
    llm_base_url: opt.LLMBaseURL = None,
    llm_model: opt.LLMModel = None,
    download: opt.Download = True,
) -> None:
    """The main job: the Prefect pipeline flow (ingest, split, augment, train, evaluate) tracked in MLflow.

    Uses Prefect's server at PREFECT_API_URL, or a local ephemeral one when unset, and the
    MLflow store at MLFLOW_TRACKING_URI (default: a sqlite file under pngnn-data/).
    """
    from pngnn.core.preflight import check_dask_scheduler, check_mlflow, check_prefect_api
    from pngnn.data.datasets import ensure_files
    from pngnn.training.methods import check_method

    quiet_environment()  # before a Prefect server is started for nothing: the arguments, the data, both servers
    llm = llm_settings(users=llm_users, base_url=llm_base_url, model=llm_model)
    settings = Settings.from_env()
    prof = get_profile(profile, settings)
    prof.train.with_overrides(epochs=epochs)  # --epochs 0: one line now, not after Prefect has started
    methods = [check_method(name) for name in method] if method else None
    if not download:
        ensure_files(dataset or prof.dataset, settings.data_dir, allow_download=False)
    check_prefect_api()
    check_mlflow(settings.mlflow_uri)
    if settings.dask_address:  # before Prefect starts: one line, no flow run to crash
        check_dask_scheduler(settings.dask_address)
    from flows.pipeline import pipeline
    from pngnn.tracking.urls import where_to_open

    out = pipeline(profile=profile, dataset=dataset, seeds=seed or None, methods=methods, epochs=epochs, llm=llm)
    typer.echo(out["table"])
    typer.echo(f"MLflow parent run: {where_to_open(settings, out['parent_run_id'])}")


if __name__ == "__main__":
    app()
