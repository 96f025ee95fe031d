-- Store one request's outcome in the answer cache (see llm.sql), replacing an earlier
-- outcome of the same key (an 'unreachable' or, on request, a 'failed' one asked again).
INSERT OR REPLACE INTO llm_cache (
    key, model, prompt_version, request, raw_answer, status, like_idx, dislike_idx, error,
    latency_s, attempts, prompt_tokens, completion_tokens, created
)
VALUES (
    $key, $model, $prompt_version, $request, $raw_answer, $status, $like_idx, $dislike_idx, $error,
    $latency_s, $attempts, $prompt_tokens, $completion_tokens, now()
);
