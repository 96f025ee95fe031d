"""The hook the LLM client calls before each request it sends (retries included).

Why a hook: a request-rate limit that holds across many processes (8 Dask workers against one
API key) needs a coordinator outside any one of them, and the one this stack has is Prefect's
global concurrency limit (``prefect.concurrency.sync.rate_limit``). The library must not import
Prefect (``tests/test_layering.py``), so the client only knows "call this, and wait while it
blocks"; ``tasks/llm_fanout.py`` hands it Prefect's ``rate_limit``. Without a hook the client
sends as fast as its thread pool lets it, as before.
"""

from __future__ import annotations

from collections.abc import Callable

# Called once before every HTTP request to the LLM (each retry is a request the server counts);
# it returns when the request may go, and may raise to end the batch.
Throttle = Callable[[], None]


def no_throttle() -> None:
    """Send at once: the default when no rate limit is configured."""
