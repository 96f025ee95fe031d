-- What appending raw_interactions to a user dataset would do, before it does it: rows new to the
-- dataset (added), rows of stored pairs with a later time (updated), the rest (already present).
WITH incoming AS (
    SELECT r.ext_user, r.ext_item, r.ts, s.ts AS stored_ts, s.user_id IS NOT NULL AS present
    FROM raw_interactions r
    LEFT JOIN (
        SELECT u.external_id AS ext_user, i.external_id AS ext_item, x.ts, x.user_id
        FROM ratings x
        JOIN users u ON u.dataset = x.dataset AND u.user_id = x.user_id
        JOIN items i ON i.dataset = x.dataset AND i.item_id = x.item_id
        WHERE x.dataset = $dataset
    ) s USING (ext_user, ext_item)
)
SELECT count(*) FILTER (WHERE NOT present) AS added,
       count(*) FILTER (WHERE present AND ts IS NOT NULL AND (stored_ts IS NULL OR ts > stored_ts)) AS updated,
       count(*) FILTER (WHERE present AND NOT (ts IS NOT NULL AND (stored_ts IS NULL OR ts > stored_ts))) AS present
FROM incoming;
