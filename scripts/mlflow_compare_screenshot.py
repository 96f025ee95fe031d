"""The screenshot of MLflow's Compare view in README (docs/mlflow-compare.png), made from real runs.

    python scripts/mlflow_compare_screenshot.py [--out docs/mlflow-compare.png]

Starts a real ``mlflow server`` (a throw-away sqlite store and artifact folder), trains three
methods on ML-100K split seeds 1 and 2 through ``pngnn.tracking.runs.tracked_run`` (the path every
flow uses, so the runs carry the same params, tags, dataset input and metric names), opens
MLflow's Compare page for those runs in headless Chromium and picks in it what README says to
pick (driven through the DevTools protocol, as a user clicks): the parameter ``method`` and
the metrics ``precision_at_05``, ``recall_at_20``, ``ndcg_at_20`` on the parallel-coordinates
plot, the tables below it folded. The page is saved as a small palette PNG.

Needs the MovieLens files (``PNGNN_DATA_DIR``) and Chromium: ``apt-get install chromium``
(Debian's package) or ``--chromium PATH``. Takes about two minutes on 2 cores. The numbers in
the picture are those of the short training here, not results.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The methods side by side: a popularity baseline, a closed-form one and a graph model, a few epochs.
METHODS = {"mostpop": {}, "ease": {}, "lightgcn": {"epochs": 5, "batch_size": 4096, "n_neg": 5, "l2": 1e-3}}
SEEDS = (1, 2)
# What README tells a user to pick in Compare's parallel-coordinates plot.
PICK_PARAMS = ("method",)
PICK_METRICS = ("precision_at_05", "recall_at_20", "ndcg_at_20")
FOLD = ("Run details", "Parameters", "Metrics", "Tags")  # tables folded below the plot
QUIET = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """A real MLflow tracking server on a free loopback port; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
           str(root / "artifacts"), "--workers", "1"]
    log = (root / "mlflow-server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **QUIET},
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (root / "mlflow-server.log").read_text()
                    raise RuntimeError(f"mlflow server did not start: {log_text}") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def track_runs(root: Path, tracking_uri: str, data_dir: Path) -> tuple[str, list[str]]:
    """One parent run with a child run per method and split of ML-100K; (experiment id, child run ids)."""
    import torch

    from pngnn.augment.edges import load_split_step
    from pngnn.core.profiles import get_profile
    from pngnn.core.settings import Settings
    from pngnn.data.prepare import ingest_step, split_step
    from pngnn.tracking.runs import parent_run, setup, tracked_run

    torch.set_num_threads(1)
    settings = Settings(data_dir=data_dir, db_path=root / "pngnn.duckdb", mlflow_uri=tracking_uri)
    ingest_step(settings, "ml-100k", allow_download=False)
    base = get_profile("quick").train
    ids = []
    with parent_run(settings, "ml-100k", "pipeline-quick", tags={"flow": "pipeline"}) as parent_id:
        for seed in SEEDS:
            split_step(settings, "ml-100k", seed)
            split = load_split_step(settings, "ml-100k", seed)
            for method, overrides in METHODS.items():
                run = tracked_run(settings, split, method, base.with_overrides(seed=seed, **overrides),
                                  profile="quick", parent_run_id=parent_id, log_model=False, progress=False)
                ids.append(run.run_id or "")
    return setup(settings, "ml-100k"), ids


def compare_url(server: str, experiment_id: str, run_ids: list[str]) -> str:
    """The Compare page of these runs, in the UI's model-training mode (not GenAI)."""
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([experiment_id]),
                                    "workflowType": "machine_learning"})
    return f"{server}/#/compare-runs?{query}"


def chromium_binary(given: str | None) -> str:
    for name in ([given] if given else ["chromium", "chromium-headless-shell", "chromium-browser", "google-chrome"]):
        found = shutil.which(name) if name else None
        if found:
            return found
    raise SystemExit("no Chromium found: apt-get install chromium (or pass --chromium PATH)")


class Browser:
    """Headless Chromium driven through the DevTools protocol (one page): navigate, run
    JavaScript, click and type as a user does, capture the viewport."""

    def __init__(self, chromium: str, width: int, height: int) -> None:
        from websockets.sync.client import connect  # a dependency of Prefect's client

        self.profile = tempfile.mkdtemp(prefix="chromium-")
        port = free_port()
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--remote-debugging-port={port}", f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as resp:
                    page = next(t for t in json.load(resp) if t["type"] == "page")
                break
            except (OSError, StopIteration):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"chromium did not start ({chromium})") from None
                time.sleep(0.2)
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.calls = 0
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.calls += 1
        self.ws.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.calls:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(expression):
            if time.monotonic() > deadline:
                raise SystemExit(f"the page never showed {expression}")
            time.sleep(0.5)

    def click(self, element: str) -> None:
        """A real mouse click at the middle of ``element`` (a JavaScript expression)."""
        box = self.js(f"(() => {{ const e = {element}; if (!e) return null; e.scrollIntoView({{block: 'center'}}); "
                      "const b = e.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; })()")
        if box is None:
            raise SystemExit(f"nothing to click: {element}")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        time.sleep(0.5)

    def type_and_enter(self, text: str) -> None:
        self.call("Input.insertText", text=text)
        time.sleep(0.5)
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13)
        time.sleep(0.5)

    def screenshot(self, out: Path) -> None:
        out.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        """Stop the browser's whole process group: Debian's ``chromium-headless-shell`` is a shell
        script that runs the browser as its child, so stopping the script alone left the browser
        (and its zygotes and renderer) running after every use."""
        self.ws.close()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=30)
                time.sleep(0.5)  # the group's other members go after the script
            except subprocess.TimeoutExpired:
                continue
        shutil.rmtree(self.profile, ignore_errors=True)


SELECTS = "document.querySelectorAll('input[role=combobox]')"  # the plot's Parameters, then Metrics


def chosen(browser: Browser, index: int) -> list[str]:
    """The values a select of the plot shows as chosen."""
    return browser.js(f"Array.from({SELECTS}[{index}].closest('.du-bois-light-select')"
                      ".querySelectorAll('.du-bois-light-select-selection-item')).map(e => e.innerText.trim())")


def pick_in_compare(browser: Browser, url: str, n_runs: int) -> None:
    """Open Compare and pick what README says: the parameters and metrics of the plot."""
    browser.call("Page.enable")
    browser.call("Page.navigate", url=url)
    browser.wait_for(f"!!document.body && document.body.innerText.includes('Comparing {n_runs} Runs')")
    browser.wait_for(f"{SELECTS}.length >= 2")
    close = "document.querySelector('[data-component-id=\"mlflow.assistant.chat_panel.close\"]')"
    if browser.js(f"!!{close}"):  # MLflow 3's assistant opens beside the page on a first visit
        browser.click(close)
    browser.click("Array.from(document.querySelectorAll('button')).find(b => b.innerText.trim() === 'Clear All')")
    for index, keys in enumerate((PICK_PARAMS, PICK_METRICS)):
        for key in keys:
            browser.click(f"{SELECTS}[{index}].closest('.du-bois-light-select-selector')")
            browser.type_and_enter(key)
        browser.call("Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape", windowsVirtualKeyCode=27)
        if chosen(browser, index) != list(keys):
            raise SystemExit(f"the plot shows {chosen(browser, index)}, not {list(keys)}: has MLflow's UI changed?")
    for section in FOLD:
        header = ("Array.from(document.querySelectorAll('.du-bois-light-collapse-header'))"
                  f".find(h => h.innerText.trim() === '{section}')")
        if browser.js(f"!!{header} && {header}.getAttribute('aria-expanded') !== 'false'"):
            browser.click(header)
    browser.js("document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    time.sleep(2)  # the plot redraws


def shrink(path: Path, colors: int = 64) -> None:
    """An 8-bit palette PNG: a UI screenshot has few colours, and the file is committed."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "mlflow-compare.png")
    parser.add_argument("--chromium", help="the Chromium binary (default: the first on PATH)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=860)
    args = parser.parse_args()
    chromium = chromium_binary(args.chromium)
    data_dir = Path(os.environ.get("PNGNN_DATA_DIR", "~/.cache/pngnn/movielens")).expanduser()
    os.environ.update(QUIET)
    root = Path(tempfile.mkdtemp(prefix="mlflow-screenshot-"))
    try:
        with mlflow_server(root) as server:
            experiment_id, run_ids = track_runs(root, server, data_dir)
            url = compare_url(server, experiment_id, run_ids)
            browser = Browser(chromium, args.width, args.height)
            try:
                pick_in_compare(browser, url, len(run_ids))
                args.out.parent.mkdir(parents=True, exist_ok=True)
                browser.screenshot(args.out)
            finally:
                browser.close()
        shrink(args.out)
        print(f"{args.out} ({args.out.stat().st_size // 1024} KiB)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
