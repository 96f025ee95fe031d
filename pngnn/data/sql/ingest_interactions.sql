-- Replace one user dataset (pngnn.data.user_data) with the frames registered as
-- raw_interactions(ext_user, ext_item, rating, ts) and raw_catalog(ext_item, title, text), in one
-- transaction. The user's ids (strings, large numbers) become dense INTEGER ids here, 1-based in
-- the order of the ids as text, and stay beside them as external_id: everything inside the
-- pipeline runs on the integers, every output speaks the external ids.
DELETE FROM splits WHERE dataset = $dataset;
DELETE FROM split_meta WHERE dataset = $dataset;
DELETE FROM ratings WHERE dataset = $dataset;
DELETE FROM items WHERE dataset = $dataset;
DELETE FROM users WHERE dataset = $dataset;
DELETE FROM datasets WHERE dataset = $dataset;

CREATE OR REPLACE TEMP TABLE user_map AS
SELECT ext_user, (row_number() OVER (ORDER BY ext_user))::INTEGER AS user_id
FROM (SELECT DISTINCT ext_user FROM raw_interactions);

CREATE OR REPLACE TEMP TABLE item_map AS
SELECT ext_item, (row_number() OVER (ORDER BY ext_item))::INTEGER AS item_id,
       bool_or(rated) AS rated
FROM (SELECT ext_item, true AS rated FROM raw_interactions
      UNION ALL SELECT ext_item, false FROM raw_catalog)
GROUP BY ext_item;

INSERT INTO ratings (dataset, user_id, item_id, rating, ts)
SELECT $dataset, u.user_id, i.item_id, r.rating, r.ts
FROM raw_interactions r JOIN user_map u USING (ext_user) JOIN item_map i USING (ext_item);

INSERT INTO items (dataset, item_id, item_idx, title, year, genres, external_id, text)
SELECT $dataset, m.item_id,
       CASE WHEN m.rated THEN (dense_rank() OVER (PARTITION BY m.rated ORDER BY m.item_id) - 1)::INTEGER END,
       c.title, NULL, NULL, m.ext_item, c.text
FROM item_map m LEFT JOIN raw_catalog c USING (ext_item);

INSERT INTO users (dataset, user_id, user_idx, external_id)
SELECT $dataset, user_id, user_id - 1, ext_user FROM user_map;

INSERT INTO datasets (dataset, checksum, n_ratings, n_users, n_items, ingested_at, source, like_threshold, implicit)
SELECT $dataset, $checksum, (SELECT count(*) FROM raw_interactions), (SELECT count(*) FROM user_map),
       (SELECT count(*) FROM item_map WHERE rated), now(), $source, $like_threshold, $implicit;

DROP TABLE user_map;
DROP TABLE item_map;
