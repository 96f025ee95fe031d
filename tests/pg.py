"""A throwaway PostgreSQL cluster for integration tests: ``initdb`` + ``pg_ctl`` on a free 127.0.0.1 port.

Real PostgreSQL (Debian's ``postgresql`` package; ``.ci/run`` installs it on a bare CI machine),
nothing mocked: the cluster lives in a fresh temporary folder, listens on loopback only, asks
for a password over TCP (as docker-compose's ``postgres`` service does, so the URLs the servers
get have the same shape), and is stopped and deleted when the block ends.

PostgreSQL refuses to run as root. CI runs as root, so there the programs run as the
``postgres`` user the package creates, in a folder that user owns (pytest's own tmp folders
are 0700 root, out of its reach, which is why the cluster gets its own folder).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

USER = "pngnn"
PASSWORD = "pngnn-test"  # a throwaway cluster on loopback; the password only shapes the URLs like compose's


def pg_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's /usr/lib/postgresql/<major>/bin
    (the package does not put them on PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    candidates.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0, reverse=True)
    return candidates[0] if candidates else None


def missing_reason() -> str | None:
    """Why no cluster can be made here (None when one can): the reason a test skips with."""
    if pg_bin() is None:
        return ("PostgreSQL's initdb is not installed (apt-get install postgresql; .ci/run installs it, "
                "so CI never skips this)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run PostgreSQL as (initdb refuses root)"
    return None


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    user: str
    password: str
    root: Path

    def url(self, database: str, driver: str = "postgresql") -> str:
        """``driver://user:password@host:port/database``: ``postgresql`` for MLflow (psycopg2),
        ``postgresql+asyncpg`` for Prefect."""
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def sql(self, database: str, query: str) -> list[tuple[str, ...]]:
        """Rows of ``query`` (text columns) read with psql: the databases' own view, not the servers'."""
        proc = self._run(["psql", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", self.host,
                          "-p", str(self.port), "-U", self.user, "-d", database, "-c", query])
        return [tuple(line.split("\t")) for line in proc.stdout.splitlines() if line]

    def sql_file(self, database: str, path: Path) -> None:
        """Run a SQL script as docker-entrypoint-initdb.d does (psql -f, stop at the first error)."""
        script = self.root / path.name  # readable by the postgres user, unlike the checkout may be
        shutil.copyfile(path, script)
        os.chmod(script, 0o644)
        self._run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port),
                   "-U", self.user, "-d", database, "-f", str(script)])

    def _run(self, args: list[str]) -> subprocess.CompletedProcess:
        bin_dir = pg_bin()
        assert bin_dir is not None
        return _pg([str(bin_dir / args[0]), *args[1:]], self.root, {"PGPASSWORD": self.password})


def _as_postgres() -> dict:
    """subprocess keywords that drop root to the `postgres` user; nothing when not root."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _pg(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
        ) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "LC_ALL": "C", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
                          **_as_postgres())
    if proc.returncode != 0:
        output = proc.stdout[-1500:] + proc.stderr[-1500:]
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({proc.returncode}): {output}")
    return proc


@contextmanager
def postgres_cluster(databases: tuple[str, ...] = ("prefect", "mlflow"), user: str = USER, password: str = PASSWORD,
                     port: int | None = None) -> Iterator[Cluster]:
    """A running cluster holding ``databases`` (owned by ``user``, the superuser), on ``port`` (default:
    a free one), stopped and deleted afterwards."""
    reason = missing_reason()
    if reason:
        raise RuntimeError(reason)
    bin_dir = pg_bin()
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="pngnn-pg-"))
    started = False
    try:
        data = root / "data"
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        owner = _as_postgres()
        if owner:  # the folder and the password file must be the postgres user's
            for path in (root, pwfile):
                os.chown(path, owner["user"], owner["group"])
        _pg([str(bin_dir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}", "-E", "UTF8",
             "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"], root)
        port = port or free_port()
        # Loopback only, the socket in the cluster's folder (not /var/run/postgresql), and no
        # durability: a throwaway cluster on a busy machine should not wait for fsync.
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB")
        _pg([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"), "-o", options,
             "-w", "-t", "120", "start"], root, timeout=150)
        started = True
        cluster = Cluster("127.0.0.1", port, user, password, root)
        for name in databases:
            cluster._run(["createdb", "-h", cluster.host, "-p", str(port), "-U", user, name])
        yield cluster
    finally:
        if started:
            subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"],
                           cwd=root, capture_output=True, timeout=120, **_as_postgres())
        shutil.rmtree(root, ignore_errors=True)
