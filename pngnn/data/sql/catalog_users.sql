-- The users a model of this dataset has rows for: MovieLens id and row (user_idx), what the
-- served model maps request ids through.
SELECT user_id, user_idx
FROM users
WHERE dataset = $dataset AND user_idx IS NOT NULL
ORDER BY user_idx;
