-- One random id per DuckDB file, created when the file is first opened for writing (with the
-- other tables, pngnn.store.SCHEMA_FILES) and read by the cached Prefect tasks (tasks/cache.py).
-- It lives and dies with the file: a deleted or replaced file gets a new id, so cache keys that
-- include it never skip a step whose output is gone.
CREATE TABLE IF NOT EXISTS store_identity (
    id       VARCHAR NOT NULL,
    created  TIMESTAMP NOT NULL
);

INSERT INTO store_identity
SELECT uuid()::VARCHAR, now()::TIMESTAMP
WHERE NOT EXISTS (SELECT 1 FROM store_identity);
