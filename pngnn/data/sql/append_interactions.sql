-- Add new interactions of a user dataset (pngnn.data.user_data) from raw_interactions(ext_user,
-- ext_item, rating, ts) and raw_catalog(ext_item, title, text), in one transaction. New users and
-- items get the next ids and indices; a pair already stored is skipped when the new row is not
-- newer, and updated (rating and time) when it is: the latest by time wins, as at ingest. The
-- dataset's splits are dropped: they were drawn over the old interactions, and the next split
-- draws them again over all of them. The caller counts what changed first (append_counts.sql).
INSERT INTO users (dataset, user_id, user_idx, external_id)
SELECT $dataset,
       (SELECT coalesce(max(user_id), 0) FROM users WHERE dataset = $dataset) + row_number() OVER (ORDER BY ext_user),
       (SELECT coalesce(max(user_idx), -1) FROM users WHERE dataset = $dataset) + row_number() OVER (ORDER BY ext_user),
       ext_user
FROM (SELECT DISTINCT ext_user FROM raw_interactions
      WHERE ext_user NOT IN (SELECT external_id FROM users WHERE dataset = $dataset));

INSERT INTO items (dataset, item_id, item_idx, title, year, genres, external_id, text)
SELECT $dataset,
       (SELECT coalesce(max(item_id), 0) FROM items WHERE dataset = $dataset) + row_number() OVER (ORDER BY ext_item),
       NULL, c.title, NULL, NULL, n.ext_item, c.text
FROM (SELECT ext_item FROM raw_interactions UNION SELECT ext_item FROM raw_catalog) n
LEFT JOIN raw_catalog c USING (ext_item)
WHERE n.ext_item NOT IN (SELECT external_id FROM items WHERE dataset = $dataset);

-- catalogue rows of known items fill in what the catalogue did not say before
UPDATE items SET title = coalesce(items.title, c.title), text = coalesce(items.text, c.text)
FROM raw_catalog c
WHERE items.dataset = $dataset AND items.external_id = c.ext_item;

-- items rated for the first time get the next columns of every model
UPDATE items SET item_idx = fresh.item_idx
FROM (
    SELECT i.item_id,
           (SELECT coalesce(max(item_idx), -1) FROM items WHERE dataset = $dataset)
           + row_number() OVER (ORDER BY i.item_id) AS item_idx
    FROM items i
    WHERE i.dataset = $dataset AND i.item_idx IS NULL
      AND i.external_id IN (SELECT ext_item FROM raw_interactions)
) fresh
WHERE items.dataset = $dataset AND items.item_id = fresh.item_id;

CREATE OR REPLACE TEMP TABLE incoming AS
SELECT u.user_id, i.item_id, r.rating, r.ts
FROM raw_interactions r
JOIN users u ON u.dataset = $dataset AND u.external_id = r.ext_user
JOIN items i ON i.dataset = $dataset AND i.external_id = r.ext_item;

UPDATE ratings SET rating = n.rating, ts = n.ts
FROM incoming n
WHERE ratings.dataset = $dataset AND ratings.user_id = n.user_id AND ratings.item_id = n.item_id
  AND n.ts IS NOT NULL AND (ratings.ts IS NULL OR n.ts > ratings.ts);

INSERT INTO ratings (dataset, user_id, item_id, rating, ts)
SELECT $dataset, n.user_id, n.item_id, n.rating, n.ts
FROM incoming n
WHERE NOT EXISTS (SELECT 1 FROM ratings r WHERE r.dataset = $dataset AND r.user_id = n.user_id
                  AND r.item_id = n.item_id);

DROP TABLE incoming;

DELETE FROM splits WHERE dataset = $dataset;
DELETE FROM split_meta WHERE dataset = $dataset;

UPDATE datasets SET
    checksum = $checksum,
    n_ratings = (SELECT count(*) FROM ratings WHERE dataset = $dataset),
    n_users = (SELECT count(*) FROM users WHERE dataset = $dataset),
    n_items = (SELECT count(*) FROM items WHERE dataset = $dataset AND item_idx IS NOT NULL),
    ingested_at = now()
WHERE dataset = $dataset;
