-- Replace one dataset's ratings, items and users with the frames registered as
-- raw_ratings, raw_items and raw_users. Run inside one transaction by the store, so a
-- failure leaves the previous contents untouched. Splits of the old data are dropped:
-- they index ratings that no longer exist.
DELETE FROM splits WHERE dataset = $dataset;
DELETE FROM split_meta WHERE dataset = $dataset;
DELETE FROM ratings WHERE dataset = $dataset;
DELETE FROM items WHERE dataset = $dataset;
DELETE FROM users WHERE dataset = $dataset;
DELETE FROM datasets WHERE dataset = $dataset;

INSERT INTO ratings (dataset, user_id, item_id, rating, ts)
SELECT $dataset, user_id, item_id, rating, ts FROM raw_ratings;

INSERT INTO items (dataset, item_id, item_idx, title, year, genres)
WITH rated AS (
    SELECT item_id, (dense_rank() OVER (ORDER BY item_id) - 1)::INTEGER AS item_idx
    FROM (SELECT DISTINCT item_id FROM raw_ratings)
)
SELECT $dataset, coalesce(i.item_id, r.item_id), r.item_idx, i.title, i.year, i.genres
FROM raw_items i FULL OUTER JOIN rated r ON i.item_id = r.item_id;

INSERT INTO users (dataset, user_id, user_idx, gender, age, occupation, zip)
WITH rated AS (
    SELECT user_id, (dense_rank() OVER (ORDER BY user_id) - 1)::INTEGER AS user_idx
    FROM (SELECT DISTINCT user_id FROM raw_ratings)
)
SELECT $dataset, coalesce(u.user_id, r.user_id), r.user_idx, u.gender, u.age, u.occupation, u.zip
FROM raw_users u FULL OUTER JOIN rated r ON u.user_id = r.user_id;

INSERT INTO datasets (dataset, checksum, n_ratings, n_users, n_items, ingested_at)
SELECT $dataset, $checksum, (SELECT count(*) FROM raw_ratings),
       (SELECT count(DISTINCT user_id) FROM raw_ratings),
       (SELECT count(DISTINCT item_id) FROM raw_ratings), now();
