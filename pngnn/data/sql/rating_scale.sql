-- How a dataset's ratings read, for the LLM step: its like threshold (NULL for MovieLens, whose
-- threshold is the training settings' 3.5), whether it is implicit, the lowest and highest rating,
-- and how many rated items carry a title (a prompt shows titles).
SELECT d.like_threshold, coalesce(d.implicit, false) AS implicit,
       (SELECT min(rating) FROM ratings WHERE dataset = $dataset) AS low,
       (SELECT max(rating) FROM ratings WHERE dataset = $dataset) AS high,
       (SELECT count(title) FROM items WHERE dataset = $dataset AND item_idx IS NOT NULL) AS titled,
       (SELECT count(*) FROM items WHERE dataset = $dataset AND item_idx IS NOT NULL) AS rated_items
FROM datasets d
WHERE d.dataset = $dataset;
