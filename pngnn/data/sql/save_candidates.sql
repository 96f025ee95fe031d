-- Replace the stored candidates of the users in the frame `new_candidates(user_id, rank,
-- item_id, score)` for this split, ranked by the LightGCN of profile $ranker; other users'
-- candidates stay. Run in one transaction.
DELETE FROM llm_candidates
WHERE dataset = $dataset AND seed = $seed
  AND user_id IN (SELECT DISTINCT user_id FROM new_candidates);

INSERT INTO llm_candidates (dataset, seed, user_id, rank, item_id, score, ranker)
SELECT $dataset, $seed, user_id, rank, item_id, score, $ranker FROM new_candidates;
