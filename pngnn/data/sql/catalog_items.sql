-- The items a model of this dataset scores: MovieLens id, column (item_idx) and title, what
-- the served model answers with; external_id: a user's own id (NULL for MovieLens).
SELECT item_id, item_idx, title, external_id
FROM items
WHERE dataset = $dataset AND item_idx IS NOT NULL
ORDER BY item_idx;
