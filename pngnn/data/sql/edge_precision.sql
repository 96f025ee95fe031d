-- How good are the LLM's choices? Over every answered prompt ('ok') of one split, model
-- and prompt version: how often the 'like' is a held-out test like (rating > threshold)
-- and the 'dislike' a held-out test dislike, against the base rate of the candidates
-- shown (picking a candidate at random). llm_likes (key, like_idx), registered by the caller:
-- the log-probability scoring's like where it applies, as in merge_augmented.sql.
-- Train and validation items are never
-- candidates, so only test ratings can match.
WITH shown AS (
    SELECT p.user_id, p.variant, coalesce(l.like_idx, c.like_idx) AS like_idx, c.dislike_idx,
           unnest(p.items) AS item_id, generate_subscripts(p.items, 1) AS pos
    FROM llm_prompts p JOIN llm_cache c ON c.key = p.key
    LEFT JOIN llm_likes l ON l.key = p.key
    WHERE p.dataset = $dataset AND p.seed = $seed AND p.model = $model
      AND p.prompt_version = $prompt_version AND c.status = 'ok'
),
judged AS (
    SELECT s.*, t.rating IS NOT NULL AS in_test,
           coalesce(t.rating > $threshold, false) AS test_like,
           coalesce(t.rating <= $threshold, false) AS test_dislike
    FROM shown s
    LEFT JOIN splits t ON t.dataset = $dataset AND t.seed = $seed AND t.part = 'test'
                      AND t.user_id = s.user_id AND t.item_id = s.item_id
)
SELECT
    count(*) FILTER (WHERE pos = like_idx) AS n_answers,
    count(*) AS n_candidates,
    avg(test_like::DOUBLE) FILTER (WHERE pos = like_idx) AS like_precision,
    avg(test_like::DOUBLE) AS like_base_rate,
    avg(test_dislike::DOUBLE) FILTER (WHERE pos = dislike_idx) AS dislike_precision,
    avg(test_dislike::DOUBLE) AS dislike_base_rate,
    avg(in_test::DOUBLE) FILTER (WHERE pos = like_idx) AS like_in_test,
    avg(in_test::DOUBLE) FILTER (WHERE pos = dislike_idx) AS dislike_in_test,
    avg(in_test::DOUBLE) AS candidates_in_test
FROM judged;
