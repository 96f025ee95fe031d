-- Tables of llm-pngnn. Every table carries the dataset name so one DuckDB file can hold
-- ML-100K and ML-1M side by side. No primary keys on the large tables: DuckDB checks
-- them eagerly inside a transaction, which breaks delete-then-insert replacement;
-- uniqueness is checked by the ingest step instead.
CREATE TABLE IF NOT EXISTS datasets (
    dataset      VARCHAR PRIMARY KEY,
    checksum     VARCHAR NOT NULL,
    n_ratings    BIGINT NOT NULL,
    n_users      INTEGER NOT NULL,
    n_items      INTEGER NOT NULL,
    ingested_at  TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS ratings (
    dataset  VARCHAR NOT NULL,
    user_id  INTEGER NOT NULL,
    item_id  INTEGER NOT NULL,
    rating   FLOAT NOT NULL,
    ts       BIGINT
);

-- item_idx / user_idx: dense 0-based indices over the items/users that have ratings,
-- the row/column order of every graph and embedding table.
CREATE TABLE IF NOT EXISTS items (
    dataset   VARCHAR NOT NULL,
    item_id   INTEGER NOT NULL,
    item_idx  INTEGER,
    title     VARCHAR,
    year      INTEGER,
    genres    VARCHAR[]
);

CREATE TABLE IF NOT EXISTS users (
    dataset     VARCHAR NOT NULL,
    user_id     INTEGER NOT NULL,
    user_idx    INTEGER,
    gender      VARCHAR,
    age         INTEGER,
    occupation  VARCHAR,
    zip         VARCHAR
);

CREATE TABLE IF NOT EXISTS split_meta (
    dataset          VARCHAR NOT NULL,
    seed             INTEGER NOT NULL,
    test_fraction    DOUBLE NOT NULL,
    valid_fraction   DOUBLE NOT NULL,
    n_train          BIGINT NOT NULL,
    n_valid          BIGINT NOT NULL,
    n_test           BIGINT NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (dataset, seed)
);
-- How the split was drawn (pngnn.data.protocols): 'random', 'temporal' or 'last' (last_n per
-- user). Added after the first release: files made before it read NULL, which means random.
ALTER TABLE split_meta ADD COLUMN IF NOT EXISTS protocol VARCHAR;
ALTER TABLE split_meta ADD COLUMN IF NOT EXISTS last_n INTEGER;

-- A user's own data (pngnn.data.user_data): where it came from, its like threshold (NULL for
-- MovieLens: the training settings' 3.5), whether it is implicit (no ratings: every interaction
-- a like), and the user's own ids of users and items (NULL for MovieLens, whose ids are numbers).
ALTER TABLE datasets ADD COLUMN IF NOT EXISTS source VARCHAR;
ALTER TABLE datasets ADD COLUMN IF NOT EXISTS like_threshold DOUBLE;
ALTER TABLE datasets ADD COLUMN IF NOT EXISTS implicit BOOLEAN;
ALTER TABLE items ADD COLUMN IF NOT EXISTS external_id VARCHAR;
ALTER TABLE items ADD COLUMN IF NOT EXISTS text VARCHAR;
ALTER TABLE users ADD COLUMN IF NOT EXISTS external_id VARCHAR;

-- part: 'train', 'valid' (carved from train for early stopping) or 'test'.
CREATE TABLE IF NOT EXISTS splits (
    dataset  VARCHAR NOT NULL,
    seed     INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    item_id  INTEGER NOT NULL,
    rating   FLOAT NOT NULL,
    part     VARCHAR NOT NULL
);
