-- What a real LLM's answers to this dataset's prompts cost in tokens, as its server reported
-- them (usage): answered prompts with a usage, and their mean prompt and completion tokens.
-- The what-if's simulated answerers (model 'oracle-...') report none and are left out.
SELECT
    count(*) AS prompts,
    avg(c.prompt_tokens) AS prompt_tokens,
    avg(c.completion_tokens) AS completion_tokens,
    string_agg(DISTINCT c.model, ', ' ORDER BY c.model) AS models
FROM (SELECT DISTINCT key FROM llm_prompts WHERE dataset = $dataset) p
JOIN llm_cache c ON c.key = p.key
WHERE c.status = 'ok' AND c.prompt_tokens IS NOT NULL AND c.completion_tokens IS NOT NULL
  AND c.model NOT LIKE 'oracle-%';
