-- Store one request's outcome in the answer cache (see llm.sql), replacing an earlier
-- outcome of the same key (a transient failure or, on request, a permanent one asked again).
INSERT OR REPLACE INTO llm_cache (
    key, model, prompt_version, request, raw_answer, status, failure, like_idx, dislike_idx, error,
    latency_s, attempts, prompt_tokens, completion_tokens, scores, created
)
VALUES (
    $key, $model, $prompt_version, $request, $raw_answer, $status, $failure, $like_idx, $dislike_idx, $error,
    $latency_s, $attempts, $prompt_tokens, $completion_tokens, $scores, now()
);
