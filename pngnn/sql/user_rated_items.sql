-- Every item (dense index) one user rated: the mask when the model's split is unknown.
SELECT i.item_idx
FROM ratings r
JOIN items i USING (dataset, item_id)
WHERE r.dataset = $dataset AND r.user_id = $user_id;
