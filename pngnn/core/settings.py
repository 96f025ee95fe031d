"""Settings from the environment: where things are (``Settings``) and which LLM augments the
graph and how it is asked (``LLMSettings``).

Both read every field from an environment variable, ``PNGNN_<FIELD>`` and ``PNGNN_LLM_<FIELD>``
(e.g. ``PNGNN_LLM_USERS`` for ``LLMSettings.users``), so tests, CI and docker-compose redirect them
without touching code; a few keep the name users already know (``PNGNN_DB``, ``MLFLOW_TRACKING_URI``,
``PREFECT_API_URL``, ``OPENAI_API_KEY``). Keyword arguments win over the environment, the
environment over the defaults; an empty variable counts as unset. They are read here and nowhere
else: the library, the tasks, the flows and the command line take one of these objects.

A bad value fails when the object is built, with one line that names the variable (or the
keyword) and the fix, as a ``PngnnError``, so the command line prints it without a traceback.
README's "Settings" table lists every variable.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_settings import BaseSettings, SettingsConfigDict

from pngnn.core.constants import DEFAULT_MAX_FAILED_SHARE, LLM_USERS, LOCAL_LLM_MODEL, UserOrder
from pngnn.core.errors import PngnnError

TOP_LOGPROBS = 20  # candidates' log-probabilities asked for with scoring=logprobs (OpenAI's maximum)

SchemaMode = Literal["auto", "json_schema", "json_object", "none"]
Scoring = Literal["answer", "logprobs"]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
NO_KEY = "sk-no-key-required"  # what local servers get: the SDK insists on some key


class _EnvSettings(BaseSettings):
    """Fields named by keyword, variables by their documented name only; pydantic's multi-line
    ValidationError becomes one ``PngnnError`` line."""

    # Not validate_by_name: with it a field with its own variable name (db_path: PNGNN_DB) would
    # also be read from an undocumented PNGNN_DB_PATH. Keywords are mapped to the name in __init__.
    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_ignore_empty=True)
    _kind: ClassVar[str] = "setting"

    def __init__(self, **values: Any) -> None:
        cls = type(self)
        given = {cls._field_named(k) or k for k in values}
        try:
            super().__init__(**{cls._input_name(k): v for k, v in values.items()})
        except ValidationError as exc:
            raise PngnnError(cls._explain(exc, given)) from None

    @classmethod
    def _input_name(cls, key: str) -> str:
        field = cls.model_fields.get(key)
        return cls.env_names(key)[0] if field is not None and field.validation_alias is not None else key

    @classmethod
    def env_names(cls, field: str) -> tuple[str, ...]:
        """The environment variables ``field`` is read from, first one first."""
        return _aliases(cls.model_fields[field].validation_alias) or (
            f"{cls.model_config.get('env_prefix', '')}{field}".upper(),)

    @classmethod
    def _field_named(cls, key: str) -> str | None:
        if key in cls.model_fields:
            return key
        return next((f for f in cls.model_fields if key in _aliases(cls.model_fields[f].validation_alias)), None)

    @classmethod
    def _explain(cls, exc: ValidationError, given: set[str]) -> str:
        problems = []
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            field = cls._field_named(key)
            if field is None:
                problems.append(f"unknown {cls._kind} '{key}'; valid names are {sorted(cls.model_fields)}")
                continue
            msg = str(err["msg"]).removeprefix("Value error, ")
            msg = msg[:1].lower() + msg[1:]
            value = "***" if field == "api_key" else repr(err["input"])
            default = cls.model_fields[field].default
            if field in given:
                problems.append(f"{cls._kind} {field}={value}: {msg}; pass a valid value (default: {default})")
            else:
                var = cls.env_names(field)[0]
                problems.append(f"{var}={value}: {msg}; set {var} to a valid value or unset it (default: {default})")
        return "; ".join(problems)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _aliases(alias: object) -> tuple[str, ...]:
    if isinstance(alias, str):
        return (alias,)
    if isinstance(alias, AliasChoices):
        return tuple(str(a) for a in alias.choices)
    return ()


class Settings(_EnvSettings):
    """Where things are (data cache, DuckDB file, MLflow and Prefect servers, tuned profiles) and how
    the flows are served."""

    model_config = SettingsConfigDict(env_prefix="PNGNN_")

    data_dir: Path = Field(Path("~/.cache/pngnn/movielens"),
                           description="MovieLens files (ml-100k/, ml-1m/): downloaded here when missing.")
    db_path: Path = Field(Path("pngnn-data/pngnn.duckdb"), validation_alias=AliasChoices("PNGNN_DB"),
                          description="The DuckDB file: data, splits, LLM cache and edges.")
    mlflow_uri: str = Field("sqlite:///pngnn-data/mlflow.db", validation_alias=AliasChoices("MLFLOW_TRACKING_URI"),
                            description="The MLflow tracking store (a sqlite file, a PostgreSQL database, or "
                                        "an http(s) server).")
    # MLflow's own HTTP defaults (120 s a request, 7 retries with backoff) turn a stopped tracking
    # server into minutes of silence; these bound it (``pngnn.tracking.runs.bound_tracking_requests``,
    # unless MLFLOW_HTTP_REQUEST_TIMEOUT / _MAX_RETRIES are set).
    mlflow_request_timeout_s: float = Field(10.0, gt=0, description="Seconds one request to an MLflow tracking "
                                                                     "server may take.")
    mlflow_request_retries: int = Field(2, ge=0, description="Retries of a failed request to an MLflow tracking "
                                                             "server (backoff 1 s, 2 s, ...).")
    prefect_api_url: str | None = Field(None, validation_alias=AliasChoices("PREFECT_API_URL"),
                                        description="A Prefect server; unset: a temporary local one.")
    # Tuned profiles (`pngnn tune --save-as NAME` writes NAME.json here; the committed ones live in
    # the repository's profiles/ folder, the default when run from its root).
    profiles_dir: Path = Field(Path("profiles"), description="Tuned profiles (NAME.json).")
    reaugment_cron: str = Field("0 3 * * 1", description="Schedule of the reaugment/weekly deployment.")
    timezone: str = Field("UTC", description="Time zone of that schedule.")
    serve_limit: int = Field(1, ge=1, description="Flow runs `python -m flows.serve` executes at a time.")
    device: str = Field("auto",
                        description="Where graph models train and score: auto (a GPU when torch sees one), cpu, "
                                    "cuda or cuda:N.")
    # torch's default is one thread per core in every process: two trainings side by side (two
    # flow runs of a worker, a run beside another job) then fight for the cores, and OpenMP
    # threads waiting for each other made a 90 s run take 11 min. Each training task and the
    # served worker pin torch to this many (``torch_thread_count``; ``pngnn.core.runtime``).
    torch_threads: int | None = Field(None, ge=1, description="Torch threads of each training task and the served "
                                                              "worker; unset: the cores / serve_limit, at least 1.")
    # Fan-out (README "Fan-out on Dask"): where the flows' mapped tasks (LLM chunks, the grid's
    # trainings) run, and how fast all of them together may ask the LLM.
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="threads: in the flow's process (the default); dask: on a Dask cluster.")
    dask_address: str | None = Field(None, description="An existing Dask scheduler (tcp://host:8786); unset with "
                                                       "task_runner=dask: a local cluster.")
    dask_workers: int = Field(2, ge=1, description="Worker processes of the local Dask cluster.")
    result_storage: str | None = Field(None, description="Where mapped tasks' results go: a folder, an fsspec URL "
                                                         "(s3://...) or a Prefect block (block-type/name); "
                                                         "unset: prefect-results/ beside the DuckDB file.")
    llm_rate_limit: float | None = Field(None, gt=0, description="LLM requests per second across every worker "
                                                                 "(a Prefect global concurrency limit); unset: none.")
    llm_chunk_size: int = Field(25, ge=1, description="Prompts per mapped LLM task.")

    @field_validator("data_dir", "db_path", "profiles_dir")
    @classmethod
    def _expand_user(cls, path: Path) -> Path:
        return path.expanduser()

    @field_validator("device")
    @classmethod
    def _device_name(cls, name: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name.strip().lower()):
            raise ValueError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N")
        return name.strip().lower()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{name}' (e.g. UTC or Europe/Paris)") from None
        return name

    def torch_thread_count(self) -> int:
        """``torch_threads``, else this process's cores shared among the flow runs a worker runs at
        once (``serve_limit``: the concurrent task slots, since a flow run's tasks run one by one)."""
        return self.torch_threads or max(1, available_cores() // self.serve_limit)

    @property
    def studies_dir(self) -> Path:
        """Optuna journals of studies in progress (``pngnn tune`` resumes them), beside the DuckDB file."""
        return self.db_path.parent / "studies"

    @classmethod
    def from_env(cls, device: str | None = None) -> Settings:
        """The settings of this process's environment (the same as ``Settings()``); ``device``: a
        command's ``--device``, which wins over ``PNGNN_DEVICE``."""
        return cls(device=device) if device else cls()


class LLMSettings(_EnvSettings):
    """Which LLM augments the graph (any OpenAI-compatible server, or the embedded one), how many
    users it is asked about, and how it is talked to.

    A flow parameter, so a deployment can set any field; ``api_key`` is not one (it is left out of
    the parameter schema, of ``repr``, of ``model_dump`` and of ``public()``): it comes from
    PNGNN_LLM_API_KEY or OPENAI_API_KEY, and local URLs need none."""

    model_config = SettingsConfigDict(env_prefix="PNGNN_LLM_")
    _kind: ClassVar[str] = "LLM setting"

    model: str = Field(LOCAL_LLM_MODEL, description="Model name as the server knows it (and the LLM cache records).")
    base_url: str | None = Field(None, description="OpenAI-compatible URL; unset: the embedded llama.cpp server.")
    users: int | None = Field(LLM_USERS, ge=0, description="How many users are asked per split; 0: all users.")
    users_by: UserOrder = Field("sparsest", description="Which users: the fewest train ratings first (sparsest), "
                                                        "or a seeded random sample (random).")
    candidates_profile: str | None = Field(None, description="The profile the candidate LightGCN trains with "
                                                             "(quick, paper or a tuned one); unset: quick. Named, "
                                                             "it re-ranks users whose stored candidates another "
                                                             "profile ranked.")
    prompt_version: str | None = Field(None, description="Unset: the code's prompt version (the only one it asks).")
    api_key: SkipJsonSchema[SecretStr | None] = Field(
        None, validation_alias=AliasChoices("PNGNN_LLM_API_KEY", "OPENAI_API_KEY"), exclude=True, repr=False,
        description="Key of a remote server.")
    schema_mode: SchemaMode = Field("auto", description="Structured-output form; auto: the first the server takes.")
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(64, ge=1)
    sampling_seed: int | None = 0
    timeout: float = Field(60.0, gt=0, description="Seconds one request may take.")
    max_attempts: int = Field(5, ge=1, description="Attempts per request (retries on 429, 5xx, timeouts).")
    backoff_initial_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    max_retry_after_s: float = Field(120.0, ge=0, description="Longest Retry-After honoured.")
    concurrency: int = Field(4, ge=1, description="Requests in flight (the embedded server: always 1).")
    retry_failed: bool = Field(False, description="Also ask again prompts that failed for good (invalid answers, "
                                                  "a 4xx); transient failures are always asked again.")
    parse_attempts: int = Field(1, ge=1, description="Tries of an unusable answer before it is cached as invalid "
                                                     "(more than 1 only helps a server that samples).")
    max_failed_share: float = Field(DEFAULT_MAX_FAILED_SHARE, ge=0, le=1,
                                    description="A split with more prompts than this share without a usable "
                                                "answer fails, and nothing is merged.")
    # This many requests in a row that could not connect, even after retries, end the
    # run (the server is down); what was answered before is cached.
    abort_after_unreachable: int = Field(3, ge=1)
    check_model: bool = Field(True, description="Fail first when the server does not serve `model`.")
    threads: int | None = Field(None, ge=1, description="The embedded server's threads; unset: half the cores.")
    scoring: Scoring = Field("answer", description="How the like is chosen: the JSON answer (answer), or the "
                                                   "position-debiased argmax of the model's log-probabilities "
                                                   "over the candidate numbers (logprobs); the dislike is always "
                                                   "the JSON answer's.")

    @field_validator("users")
    @classmethod
    def _zero_is_all(cls, users: int | None) -> int | None:
        return users or None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not urlsplit(url).scheme.startswith("http"):
            raise ValueError(f"'{url}' is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")
        return url

    @property
    def is_local(self) -> bool:
        return (urlsplit(self.base_url or "").hostname or "") in LOCAL_HOSTS

    def resolved_api_key(self) -> str:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.is_local:
            return NO_KEY
        raise PngnnError(
            f"no API key for the remote LLM server {self.base_url}; set PNGNN_LLM_API_KEY (or OPENAI_API_KEY)"
        )

    def sampling_params(self) -> dict[str, Any]:
        """The parameters that change the answer (part of the cache key)."""
        params: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.sampling_seed is not None:
            params["seed"] = self.sampling_seed
        if self.scoring == "logprobs":  # in the cache key too: the two scorings never share rows
            params.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        return params

    def public(self) -> dict[str, Any]:
        """Loggable settings (MLflow params): everything except the API key."""
        return self.model_dump()

    def with_overrides(self, **overrides: Any) -> LLMSettings:
        """A copy with ``overrides`` (None = keep), validated like the original."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**values, **{k: v for k, v in overrides.items() if v is not None}})


def llm_settings(defaults: Mapping[str, Any] | None = None, **given: Any) -> LLMSettings:
    """LLM settings for a command: ``given`` (its flags; None = not given) over the environment
    over ``defaults`` (the command's own, e.g. how many users it asks) over the field defaults."""
    settings = LLMSettings(**{k: v for k, v in given.items() if v is not None})
    unset = {k: v for k, v in (defaults or {}).items() if k not in settings.model_fields_set}
    return settings.with_overrides(**unset) if unset else settings


def environment_names() -> dict[str, str]:
    """Every environment variable read here -> the field it sets ("Settings.db_path", ...)."""
    return {name: f"{cls.__name__}.{field}"
            for cls in (Settings, LLMSettings) for field in cls.model_fields for name in cls.env_names(field)}


QUIET_DEFAULTS = {
    # No telemetry from any component; Prefect's ephemeral server is slow to start on 2 cores.
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # MLflow prints its own "View experiment at" address on every run's end, which opens the GenAI
    # overview; the commands print the model-training view's address instead (pngnn.tracking.urls).
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def quiet_environment() -> None:
    """``QUIET_DEFAULTS`` for what the environment leaves unset (the commands that start MLflow or Prefect)."""
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
