-- Tables of the LLM augmentation, created with the others when a store opens
-- (pngnn.store.SCHEMA_FILES).
--
-- llm_cache is content-addressed: key = sha256 of (model, prompt version, messages,
-- sampling params), so an answer is reused whatever split or run asked for it, and a
-- cached answer is never requested again. One row is written as soon as its answer
-- arrives, so a crash loses at most the requests in flight.
-- status: 'ok' (parsed), 'invalid' (the model answered but the answer is unusable),
-- 'failed' (the request failed after retries), 'unreachable' (connection failures after
-- retries). failure, for every status but 'ok': 'transient' (429, 5xx, timeout,
-- connection: the server's trouble, asked again by the next run) or 'permanent' (another
-- 4xx, an answer still unusable after the parse tries: asked again only with
-- --retry-failed).
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
    created            TIMESTAMP NOT NULL,
    failure            VARCHAR
);

-- A file from before the failure classes: add the column, and class its failures by what
-- their error says (a 4xx other than 408/409/429 is permanent, as an invalid answer is).
ALTER TABLE llm_cache ADD COLUMN IF NOT EXISTS failure VARCHAR;

UPDATE llm_cache
SET failure = CASE
    WHEN status = 'invalid' THEN 'permanent'
    WHEN status = 'failed' AND error LIKE 'HTTP 4%' AND substr(error, 6, 3) NOT IN ('408', '409', '429')
        THEN 'permanent'
    ELSE 'transient'
END
WHERE failure IS NULL AND status <> 'ok';

-- scoring=logprobs: the like's log-probability per shown candidate (a JSON list, position i
-- = candidate number i + 1, renormalised over the candidates); NULL for the answer scoring.
-- A file from before it gets the column here.
ALTER TABLE llm_cache ADD COLUMN IF NOT EXISTS scores VARCHAR;

-- Who is asking which prompt now, so that concurrent runs over the same prompts pay for
-- each once: a run claims a chunk of prompts (a short transaction) before it sends them
-- and drops each claim in the transaction that writes its answer. A claim is a lease: it
-- is void once `expires` has passed (its owner renews it with each write), or at once
-- when the owner's process (`pid` on `host`) is gone, so a crashed run's prompts are
-- asked again by the next one.
CREATE TABLE IF NOT EXISTS llm_claims (
    key      VARCHAR PRIMARY KEY,
    owner    VARCHAR NOT NULL,
    host     VARCHAR NOT NULL,
    pid      INTEGER NOT NULL,
    expires  TIMESTAMPTZ NOT NULL
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
-- The fingerprint of the user's train history when the prompt was built (pngnn.augment.history):
-- a re-augmentation asks again the users whose history changed since. NULL: asked before it was kept.
ALTER TABLE llm_prompts ADD COLUMN IF NOT EXISTS history_fp BIGINT;

-- The top-N unseen items per user from the pretrained LightGCN (rank 1 = best score).
CREATE TABLE IF NOT EXISTS llm_candidates (
    dataset  VARCHAR NOT NULL,
    seed     INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    rank     INTEGER NOT NULL,
    item_id  INTEGER NOT NULL,
    score    DOUBLE
);
-- The profile of the LightGCN that ranked them ('custom': settings given in code); NULL: stored
-- before it was kept, by the default (quick) profile.
ALTER TABLE llm_candidates ADD COLUMN IF NOT EXISTS ranker VARCHAR;

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

-- How the current edges of a (dataset, seed, model, prompt version) were made: the merge
-- replaces them all at once, so the scoring that chose the likes ('answer': the JSON answer;
-- 'logprobs': the position-debiased log-probabilities) is one per merge, written with it. A
-- table of its own rather than a column of augmented_edges, whose rows are written by position.
CREATE TABLE IF NOT EXISTS augmented_merges (
    dataset         VARCHAR NOT NULL,
    seed            INTEGER NOT NULL,
    model           VARCHAR NOT NULL,
    prompt_version  VARCHAR NOT NULL,
    scoring         VARCHAR NOT NULL,
    scored_likes    INTEGER NOT NULL,
    run_id          VARCHAR,
    created         TIMESTAMP NOT NULL,
    PRIMARY KEY (dataset, seed, model, prompt_version)
);
