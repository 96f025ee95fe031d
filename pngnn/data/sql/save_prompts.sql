-- Replace which prompt (cache key) each user in the frame `new_prompts(user_id, variant,
-- key, items, history_fp)` was asked, for this split, model and prompt version. Run in one transaction.
DELETE FROM llm_prompts
WHERE dataset = $dataset AND seed = $seed AND model = $model AND prompt_version = $prompt_version
  AND user_id IN (SELECT DISTINCT user_id FROM new_prompts);

INSERT INTO llm_prompts (dataset, seed, user_id, variant, model, prompt_version, key, items, created, history_fp)
SELECT $dataset, $seed, user_id, variant, $model, $prompt_version, key, items, now(), history_fp
FROM new_prompts;
