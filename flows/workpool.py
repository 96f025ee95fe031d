"""The deployments of prefect.yaml on a work pool: ``python -m flows.workpool check | deploy | worker``.

Why a wrapper around three Prefect commands: a missing pool is silent in Prefect (`prefect
worker start` creates one on the fly, and a deployment whose pool is gone waits as Late
forever); here it is one line naming the fix before anything is deployed or started. The
worker also needs PNGNN_CODE_DIR (prefect.yaml's pull step changes into it) at its checkout,
and `prefect deploy` must run without it (it would bake the deployer's path into every deployment).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pngnn.core.errors import PngnnError
from pngnn.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent  # the checkout (or site-packages): where flows/ lives
PREFECT_YAML = ROOT / "prefect.yaml"
CODE_DIR_VAR = "PNGNN_CODE_DIR"


def pool_name(prefect_yaml: Path = PREFECT_YAML) -> str:
    """The one work pool every deployment of ``prefect_yaml`` is on."""
    spec: dict[str, Any] = yaml.safe_load(prefect_yaml.read_text())
    names = {(d.get("work_pool") or {}).get("name") for d in spec.get("deployments") or []}
    if len(names) != 1 or None in names:
        raise PngnnError(f"{prefect_yaml} must put every deployment on one work pool (found {sorted(map(str, names))})")
    return str(names.pop())


def check_pool(name: str | None = None) -> str:
    """The pool exists on the Prefect server and is a ``process`` pool; returns a one-line summary.

    Raises a one-line PngnnError naming the fix otherwise (no server configured or reachable,
    no such pool, a pool of another type)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from pngnn.core.preflight import check_prefect_api

    name = name or pool_name()
    api = Settings().prefect_api_url
    if not api:
        raise PngnnError("PREFECT_API_URL is not set: a work pool lives on a Prefect server that every worker "
                         "reaches", "set PREFECT_API_URL=http://HOST:4200/api (the server's API)")
    check_prefect_api(api)
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            raise PngnnError(f"work pool '{name}' does not exist on PREFECT_API_URL={api}",
                             f"create it: prefect work-pool create {name} --type process") from None
        workers = client.read_workers_for_work_pool(name)
    if pool.type != "process":
        raise PngnnError(f"work pool '{name}' on PREFECT_API_URL={api} is a '{pool.type}' pool, prefect.yaml needs "
                         "a process pool", f"prefect work-pool delete {name} && "
                                           f"prefect work-pool create {name} --type process")
    online = sum(1 for w in workers if str(w.status).upper().endswith("ONLINE"))
    return f"work pool '{name}' (process) on {api}: {online} worker(s) online"


def deploy(extra: list[str]) -> int:
    """``prefect deploy --all`` of prefect.yaml from the checkout, once the pool is there."""
    check_pool()
    env = {k: v for k, v in os.environ.items() if k != CODE_DIR_VAR}  # the pull step must stay a placeholder
    cmd = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_YAML),
           *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def worker(extra: list[str]) -> None:
    """Become ``prefect worker start --pool NAME`` (exec: signals reach the worker itself) with
    PNGNN_CODE_DIR at this checkout, at most ``PNGNN_SERVE_LIMIT`` runs at a time unless
    ``--limit`` is given."""
    name = pool_name()
    check_pool(name)
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", name, "--type", "process",
           "--no-create-pool-if-not-found", *extra]
    if not any(a in ("--limit", "-l") or a.startswith("--limit=") for a in extra):
        cmd += ["--limit", str(Settings().serve_limit)]
    os.execve(sys.executable, cmd, {**os.environ, CODE_DIR_VAR: str(ROOT)})


USAGE = "usage: python -m flows.workpool {check | deploy [PREFECT DEPLOY ARGS] | worker [PREFECT WORKER ARGS]}"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("check", "deploy", "worker"):
        sys.exit(USAGE)
    try:
        if args[0] == "check":
            print(check_pool())
        elif args[0] == "deploy":
            sys.exit(deploy(args[1:]))
        else:
            worker(args[1:])
    except PngnnError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
