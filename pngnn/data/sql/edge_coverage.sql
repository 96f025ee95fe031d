-- How far the LLM edges of one split reach, for one (model, prompt version): users asked,
-- users with a usable answer, users with at least one merged edge.
WITH asked AS (
    SELECT DISTINCT user_id, key
    FROM llm_prompts
    WHERE dataset = $dataset AND seed = $seed AND model = $model AND prompt_version = $prompt_version
)
SELECT
    (SELECT count(DISTINCT user_id) FROM asked) AS asked,
    (SELECT count(DISTINCT a.user_id) FROM asked a JOIN llm_cache c ON c.key = a.key WHERE c.status = 'ok')
        AS answered,
    (SELECT count(DISTINCT user_id) FROM augmented_edges
     WHERE dataset = $dataset AND seed = $seed AND model = $model AND prompt_version = $prompt_version) AS covered;
