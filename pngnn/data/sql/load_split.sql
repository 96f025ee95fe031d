-- One split as dense indices, ready for numpy/torch.
SELECT u.user_idx, i.item_idx, s.rating, s.part
FROM splits s
JOIN users u ON u.dataset = s.dataset AND u.user_id = s.user_id
JOIN items i ON i.dataset = s.dataset AND i.item_id = s.item_id
WHERE s.dataset = $dataset AND s.seed = $seed
ORDER BY u.user_idx, i.item_idx;
