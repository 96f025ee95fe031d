-- Store one split. The draw (made in numpy: a seeded permutation, portable across DuckDB
-- versions, or a time protocol, pngnn.data.protocols) arrives as the frame `draw(rn, part)`,
-- where rn is the rating's position in (user_id, item_id) order.
DELETE FROM splits WHERE dataset = $dataset AND seed = $seed;
DELETE FROM split_meta WHERE dataset = $dataset AND seed = $seed;

INSERT INTO splits
SELECT $dataset, $seed, r.user_id, r.item_id, r.rating, d.part
FROM (
    SELECT user_id, item_id, rating, row_number() OVER (ORDER BY user_id, item_id) - 1 AS rn
    FROM ratings WHERE dataset = $dataset
) r
JOIN draw d ON d.rn = r.rn;

INSERT INTO split_meta (dataset, seed, test_fraction, valid_fraction, n_train, n_valid, n_test, created_at,
                        protocol, last_n)
SELECT $dataset, $seed, $test_fraction, $valid_fraction,
       count(*) FILTER (WHERE part = 'train'),
       count(*) FILTER (WHERE part = 'valid'),
       count(*) FILTER (WHERE part = 'test'),
       now(), $protocol, $last_n
FROM splits WHERE dataset = $dataset AND seed = $seed;
