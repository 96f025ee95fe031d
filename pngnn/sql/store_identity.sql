-- One random id per DuckDB file, created the first time a cached Prefect task looks at the
-- file (tasks/cache.py). It lives and dies with the file: a deleted or replaced file gets a
-- new id, so cache keys that include it never skip a step whose output is gone.
CREATE TABLE IF NOT EXISTS store_identity (
    id       VARCHAR NOT NULL,
    created  TIMESTAMP NOT NULL
);

INSERT INTO store_identity
SELECT uuid()::VARCHAR, now()::TIMESTAMP
WHERE NOT EXISTS (SELECT 1 FROM store_identity);

SELECT id FROM store_identity ORDER BY created LIMIT 1;
