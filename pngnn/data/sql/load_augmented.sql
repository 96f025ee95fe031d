-- Augmented edges of one split as dense indices (like load_split.sql). Several models
-- or prompt versions may have added the same edge: each (user, item, kind) counts once,
-- and a pair that is positive for one and negative for another is dropped (ambiguous).
-- $model / $prompt_version: NULL for all.
WITH edges AS (
    SELECT DISTINCT user_id, item_id, kind
    FROM augmented_edges
    WHERE dataset = $dataset AND seed = $seed
      AND ($model IS NULL OR model = $model)
      AND ($prompt_version IS NULL OR prompt_version = $prompt_version)
)
SELECT u.user_idx, i.item_idx, e.kind
FROM edges e
JOIN users u ON u.dataset = $dataset AND u.user_id = e.user_id
JOIN items i ON i.dataset = $dataset AND i.item_id = e.item_id
QUALIFY min(e.kind) OVER (PARTITION BY e.user_id, e.item_id) = max(e.kind) OVER (PARTITION BY e.user_id, e.item_id)
ORDER BY u.user_idx, i.item_idx;
