-- Tables of the LLM augmentation, created with the others when a store opens
-- (pngnn.store.SCHEMA_FILES).
--
-- llm_cache is content-addressed: key = sha256 of (model, prompt version, messages,
-- sampling params), so an answer is reused whatever split or run asked for it, and a
-- cached answer is never requested again. One row is written as soon as its answer
-- arrives, so a crash loses at most the requests in flight.
-- status: 'ok' (parsed), 'invalid' (the model answered but the answer is unusable),
-- 'failed' (the request failed after retries), 'unreachable' (connection failures after
-- retries: always retried on a rerun, the server was down, not the prompt bad).
CREATE TABLE IF NOT EXISTS llm_cache (
    key                VARCHAR PRIMARY KEY,
    model              VARCHAR NOT NULL,
    prompt_version     VARCHAR NOT NULL,
    request            VARCHAR NOT NULL,
    raw_answer         VARCHAR,
    status             VARCHAR NOT NULL,
    like_idx           INTEGER,
    dislike_idx        INTEGER,
    error              VARCHAR,
    latency_s          DOUBLE,
    attempts           INTEGER,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    created            TIMESTAMP NOT NULL
);

-- Which prompt (cache key) a user of a split was asked, and the candidates in the order
-- shown: items[i] is the movie numbered i in the prompt (DuckDB lists are 1-based, as
-- are the numbers in the prompt). variant > 0: the same question in another order
-- (self-consistency).
CREATE TABLE IF NOT EXISTS llm_prompts (
    dataset         VARCHAR NOT NULL,
    seed            INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    variant         INTEGER NOT NULL,
    model           VARCHAR NOT NULL,
    prompt_version  VARCHAR NOT NULL,
    key             VARCHAR NOT NULL,
    items           INTEGER[] NOT NULL,
    created         TIMESTAMP NOT NULL
);

-- The top-N unseen items per user from the pretrained LightGCN (rank 1 = best score).
CREATE TABLE IF NOT EXISTS llm_candidates (
    dataset  VARCHAR NOT NULL,
    seed     INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    rank     INTEGER NOT NULL,
    item_id  INTEGER NOT NULL,
    score    DOUBLE
);

-- kind: 'positive' (the candidate the LLM says the user likes most) or 'negative'
-- (likes least). Never a pair rated in the split (train, valid or test).
CREATE TABLE IF NOT EXISTS augmented_edges (
    dataset         VARCHAR NOT NULL,
    seed            INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    item_id         INTEGER NOT NULL,
    kind            VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    prompt_version  VARCHAR NOT NULL,
    run_id          VARCHAR,
    created         TIMESTAMP NOT NULL
);
