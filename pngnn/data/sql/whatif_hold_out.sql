-- The what-if split: its validation part (carved from train by create_split) becomes the
-- simulated LLM's knowledge. The rows move out of `splits` into `held_out_ratings`, so no
-- candidate, prompt, merge or training ever sees them as rated; the test part is untouched.
-- Idempotent: a second run finds no validation rows left to move.
CREATE TABLE IF NOT EXISTS held_out_ratings (
    dataset  VARCHAR NOT NULL,
    seed     INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    item_id  INTEGER NOT NULL,
    rating   FLOAT NOT NULL
);

INSERT INTO held_out_ratings
SELECT dataset, seed, user_id, item_id, rating
FROM splits
WHERE dataset = $dataset AND seed = $seed AND part = 'valid';

DELETE FROM splits WHERE dataset = $dataset AND seed = $seed AND part = 'valid';

UPDATE split_meta SET n_valid = 0 WHERE dataset = $dataset AND seed = $seed;
