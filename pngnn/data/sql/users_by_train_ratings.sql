-- Every user of the dataset with at least one train rating in split $seed and how many
-- they have: the ranking that sparsest-first augmentation draws from. Only the train part:
-- validation and test ratings must not decide whom the LLM is asked about.
SELECT u.user_id, u.user_idx, count(*) AS train_ratings
FROM users u
JOIN splits s ON s.dataset = u.dataset AND s.user_id = u.user_id
WHERE u.dataset = $dataset AND u.user_idx IS NOT NULL AND s.seed = $seed AND s.part = 'train'
GROUP BY u.user_id, u.user_idx
ORDER BY u.user_idx;
