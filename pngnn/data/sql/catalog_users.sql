-- The users a model of this dataset has rows for: MovieLens id and row (user_idx), what the
-- served model maps request ids through; external_id: a user's own id (NULL for MovieLens).
SELECT user_id, user_idx, external_id
FROM users
WHERE dataset = $dataset AND user_idx IS NOT NULL
ORDER BY user_idx;
