"""The installed ``pngnn`` command: the library's commands (``pngnn.cli``) plus ``run``, which
starts the Prefect pipeline flow. It lives here, beside the flows, so ``pngnn/`` never
imports Prefect."""

from __future__ import annotations

from typing import Annotated

import typer

from pngnn.cli import app, check_seed, friendly, quiet_environment
from pngnn.config import get_profile
from pngnn.constants import RUN_LLM_USERS
from pngnn.settings import Settings, llm_settings


@app.command("run")
@friendly
def run_cmd(
    profile: Annotated[str, typer.Option(help="quick (ML-100K, minutes) or paper (ML-1M, hours)")] = "quick",
    dataset: Annotated[str | None, typer.Option()] = None,
    seed: Annotated[list[int] | None, typer.Option(help="Split seed(s); default: the profile's.")] = None,
    method: Annotated[list[str] | None, typer.Option(help="Methods; default: the pipeline's DEFAULT_METHODS.")]
    = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    llm_users: Annotated[int | None, typer.Option(help="Users per split the LLM augments (0: all); default: "
                                                       f"PNGNN_LLM_USERS, else {RUN_LLM_USERS}.")] = None,
    llm_base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible URL; default: PNGNN_LLM_BASE_URL, "
                                                          "else the embedded SmolLM2.")] = None,
    llm_model: Annotated[str | None, typer.Option(help="Model name on that server; default: PNGNN_LLM_MODEL.")]
    = None,
) -> None:
    """The main job: the Prefect pipeline flow (ingest, split, augment, train, evaluate) tracked in MLflow.

    Uses Prefect's server at PREFECT_API_URL, or a local ephemeral one when unset, and the
    MLflow store at MLFLOW_TRACKING_URI (default: a sqlite file under pngnn-data/).
    """
    from pngnn.methods import check_method

    quiet_environment()
    llm = llm_settings({"users": RUN_LLM_USERS}, users=llm_users, base_url=llm_base_url, model=llm_model)
    get_profile(profile)
    for name in method or []:
        check_method(name)  # before a Prefect server is started for nothing
    for s in seed or []:
        check_seed(s)
    from pngnn.preflight import check_mlflow, check_prefect_api

    check_prefect_api()
    settings = Settings.from_env()
    check_mlflow(settings.mlflow_uri)
    from flows.pipeline import pipeline
    from pngnn.results import summary_table, to_markdown

    out = pipeline(profile=profile, dataset=dataset, seeds=seed, methods=method, epochs=epochs, llm=llm)
    typer.echo(to_markdown(summary_table(out["summary"])))
    typer.echo(f"MLflow parent run {out['parent_run_id']} in {settings.mlflow_uri} "
               f"(open: mlflow ui --backend-store-uri {settings.mlflow_uri})")


if __name__ == "__main__":
    app()
