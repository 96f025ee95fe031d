-- The items (dense indices) one user rated in the train and validation parts of a split:
-- what a model trained on that split has seen, masked from its recommendations.
SELECT i.item_idx
FROM splits s
JOIN items i USING (dataset, item_id)
WHERE s.dataset = $dataset AND s.seed = $seed AND s.user_id = $user_id AND s.part <> 'test';
