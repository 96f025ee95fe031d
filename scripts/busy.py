"""Run a command while every core is kept busy: how `make test-busy` proves the suite does not fail
by timing on a loaded machine (issue 34).

One burner process per core (``os.cpu_count()``, or ``--burners``) spins on arithmetic at normal
priority until the command ends; the command's exit status is this script's.

    python scripts/busy.py -- make test
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys


def burn() -> None:
    x = 0
    while True:
        x = (x * 1_103_515_245 + 12_345) % 2_147_483_648


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    burners = [mp.Process(target=burn, daemon=True) for _ in range(args.burners)]
    for p in burners:
        p.start()
    try:
        return subprocess.run(command, check=False).returncode
    finally:
        for p in burners:
            p.terminate()


if __name__ == "__main__":
    sys.exit(main())
