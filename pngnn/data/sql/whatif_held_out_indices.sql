-- The what-if split's held-out ratings as dense indices: masked at evaluation like train, since
-- the user rated them (recommending them again would waste a slot of every model alike).
SELECT u.user_idx, i.item_idx, h.rating
FROM held_out_ratings h
JOIN users u ON u.dataset = h.dataset AND u.user_id = h.user_id
JOIN items i ON i.dataset = h.dataset AND i.item_id = h.item_id
WHERE h.dataset = $dataset AND h.seed = $seed
ORDER BY u.user_idx, i.item_idx;
