-- The answered prompts of a split (model, prompt version) that carry log-probabilities, for the
-- logprob scoring's debiased likes; one row per cache key.
SELECT DISTINCT c.key, c.scores, c.dislike_idx
FROM llm_prompts p JOIN llm_cache c ON c.key = p.key
WHERE p.dataset = $dataset AND p.seed = $seed AND p.model = $model AND p.prompt_version = $prompt_version
  AND c.status = 'ok' AND c.scores IS NOT NULL
ORDER BY c.key
