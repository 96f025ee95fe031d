"""A simulated LLM of known quality, for the what-if analysis "how good must the LLM be".

``oracle_answers`` decides every answer up front: for each prompt it picks, with probability
``p``, a candidate the user really liked in a held-out part carved from *train* (and, for the
dislike, one they really disliked there), otherwise a random candidate. ``OracleServer`` then
serves those answers over the OpenAI chat-completions HTTP API on 127.0.0.1, so the answers
reach the graph through the very client, retries, cache and merge that a real LLM's do. The
held-out part is the only knowledge it has: test ratings are never read (``pngnn.app.whatif``
moves the held-out ratings out of the split before any candidate is drawn).

A labelled simulation, never an LLM row: its runs are named ``oracle-p<p>``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import polars as pl

from pngnn.core.constants import LIKE_THRESHOLD


def content_key(content: str) -> str:
    """How the server finds a prompt's answer: the hash of the user message it was sent."""
    return hashlib.sha256(content.encode()).hexdigest()


def oracle_model_name(p: float) -> str:
    return f"oracle-p{p:.2f}"


def oracle_answers(prompts: pl.DataFrame, held_out: pl.DataFrame, p: float, seed: int = 0,
                   threshold: float = LIKE_THRESHOLD) -> pl.DataFrame:
    """One answer per prompt: key, user_id, like and dislike (1-based candidate numbers), whether
    each came from the held-out truth (``like_true``, ``dislike_true``) and whether each is right
    by it (``like_hit``, ``dislike_hit``; a uniform pick can be right by luck).

    ``prompts``: ``build_prompts`` rows (user_id, items in shown order, content); ``held_out``:
    (user_id, item_id, rating) the answerer knows. With probability ``p`` a prompt is answered
    from the truth where the truth has a candidate to offer, else both picks are uniform (the
    dislike never equals the like). Vectorised over prompts; the draws are seeded by ``seed``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"the answerer's accuracy p must lie in [0, 1], got {p}")
    shown = prompts.select("user_id", "content", "items").with_row_index("prompt").explode("items")
    shown = shown.with_columns(number=pl.int_range(1, pl.len() + 1).over("prompt"))
    truth = held_out.select("user_id", pl.col("item_id").alias("items"), "rating").with_columns(
        pl.col("items").cast(shown.schema["items"]), pl.col("user_id").cast(shown.schema["user_id"]))
    shown = shown.join(truth, on=["user_id", "items"], how="left")
    n_prompts = prompts.height
    rng = np.random.default_rng(seed)
    informed = rng.random(n_prompts) < p
    sizes = prompts["items"].list.len().to_numpy()
    random_like = (rng.random(n_prompts) * sizes).astype(np.int64) + 1
    # the dislike: uniform over the other candidates
    random_dislike = (rng.random(n_prompts) * (sizes - 1)).astype(np.int64) + 1
    random_dislike = random_dislike + (random_dislike >= random_like)
    noise = rng.random(shown.height)  # which true candidate, when several qualify

    def first_true(liked: bool) -> np.ndarray:
        cond = pl.col("rating") > threshold if liked else pl.col("rating") <= threshold
        pick = (shown.with_columns(noise=pl.Series(noise)).filter(cond & pl.col("rating").is_not_null())
                .sort("prompt", "noise").group_by("prompt", maintain_order=True).agg(pl.col("number").first()))
        out = np.zeros(n_prompts, dtype=np.int64)
        out[pick["prompt"].to_numpy()] = pick["number"].to_numpy()
        return out

    true_like, true_dislike = first_true(True), first_true(False)
    like_true = informed & (true_like > 0)
    like = np.where(like_true, true_like, random_like)
    dislike_true = informed & (true_dislike > 0) & (true_dislike != like)
    dislike = np.where(dislike_true, true_dislike, random_dislike)
    clash = dislike == like  # a random dislike that hit a true like: take the next candidate
    dislike = np.where(clash, dislike % sizes + 1, dislike)
    picked = shown.select("prompt", "number", "rating")

    def rating_of(numbers: np.ndarray) -> pl.Series:
        chosen = pl.DataFrame({"prompt": np.arange(n_prompts, dtype=np.uint32), "number": numbers})
        chosen = chosen.with_columns(pl.col("prompt").cast(picked.schema["prompt"]),
                                     pl.col("number").cast(picked.schema["number"]))
        return chosen.join(picked, on=["prompt", "number"], how="left", maintain_order="left")["rating"]

    return pl.DataFrame({
        "key": [content_key(c) for c in prompts["content"]],
        "user_id": prompts["user_id"], "like": like, "dislike": dislike,
        "like_true": like_true, "dislike_true": dislike_true,
        # whether the pick is right by the held-out truth, informed or by luck
        "like_hit": (rating_of(like) > threshold).fill_null(False).to_numpy(),
        "dislike_hit": (rating_of(dislike) <= threshold).fill_null(False).to_numpy(),
    })


def candidate_base_rates(prompts: pl.DataFrame, held_out: pl.DataFrame,
                         threshold: float = LIKE_THRESHOLD) -> dict[str, float]:
    """How often a uniformly picked candidate is a held-out like / dislike: what p = 0 reaches."""
    shown = prompts.select("user_id", "items").explode("items")
    truth = held_out.select("user_id", pl.col("item_id").alias("items"), "rating").with_columns(
        pl.col("items").cast(shown.schema["items"]), pl.col("user_id").cast(shown.schema["user_id"]))
    rating = shown.join(truth, on=["user_id", "items"], how="left")["rating"]
    n = max(rating.len(), 1)
    return {"like_base_rate": round(float((rating > threshold).sum()) / n, 4),
            "dislike_base_rate": round(float((rating <= threshold).sum()) / n, 4)}


class OracleServer:
    """The OpenAI chat-completions API on 127.0.0.1 answering from a table of decided answers.

    A prompt it was not given answers 400, as a server that cannot parse the request would:
    the client caches that as a permanent failure, and the what-if reports it."""

    def __init__(self, answers: pl.DataFrame, model: str) -> None:
        table = {k: json.dumps({"like": int(a), "dislike": int(d)})
                 for k, a, d in zip(answers["key"], answers["like"], answers["dislike"], strict=True)}
        self.model, self.requests = model, 0
        lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": owner.model, "object": "model",
                                                                 "owned_by": "pngnn-whatif", "created": 0}]})
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)) or 0)
                with lock:
                    owner.requests += 1
                try:
                    body = json.loads(raw or b"{}")
                    content = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
                except (ValueError, KeyError, StopIteration, TypeError):
                    self._json(400, {"error": {"message": "no user message in the request"}})
                    return
                answer = table.get(content_key(content))
                if answer is None:
                    self._json(400, {"error": {"message": "this prompt is not in the what-if answer table"}})
                    return
                self._json(200, {
                    "id": "chatcmpl-oracle", "object": "chat.completion", "created": int(time.time()),
                    "model": owner.model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": answer}}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                })

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="oracle-llm",
                                        daemon=True)

    @property
    def base_url(self) -> str:
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    def __enter__(self) -> OracleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
