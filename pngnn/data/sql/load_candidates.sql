-- The stored candidates of the users registered as `selected_users(user_id)`, best first:
-- a rerun builds the same prompts without the LightGCN that ranked them.
SELECT c.user_id, c.rank, c.item_id, c.score
FROM llm_candidates c
JOIN selected_users s ON s.user_id = c.user_id
WHERE c.dataset = $dataset AND c.seed = $seed
ORDER BY c.user_id, c.rank;
