-- How many of the users registered as `step_users(user_id)` have no stored LLM candidates
-- for this split: 0 means the candidate LightGCN need not be trained again. $ranker: count only
-- candidates ranked by that profile (NULL: any; a NULL ranker was the default, quick).
SELECT count(*) AS missing
FROM step_users s
WHERE NOT EXISTS (
    SELECT 1 FROM llm_candidates c
    WHERE c.dataset = $dataset AND c.seed = $seed AND c.user_id = s.user_id
      AND ($ranker::VARCHAR IS NULL OR coalesce(c.ranker, 'quick') = $ranker::VARCHAR)
);
