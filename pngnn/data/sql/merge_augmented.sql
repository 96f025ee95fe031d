-- LLM answers -> augmented edges of one split, for one (model, prompt version).
-- 'like' becomes a positive edge, 'dislike' a negative edge. With several prompt
-- variants per user (self-consistency), an edge is kept only when every variant the
-- user was asked answered the same. Edges on a pair the user rated in this split
-- (train, valid or TEST) are dropped: an augmented edge must never leak a test item
-- into training, nor restate a known rating. Idempotent: the edges of this
-- (dataset, seed, model, prompt_version) are replaced.
-- llm_likes (key, like_idx), registered by the caller: the like chosen by the log-probability
-- scoring where it applies (empty for the answer scoring); elsewhere the JSON answer's.
CREATE OR REPLACE TEMP TABLE llm_agreed AS
WITH prompted AS (
    SELECT user_id, variant, key, items
    FROM llm_prompts
    WHERE dataset = $dataset AND seed = $seed AND model = $model AND prompt_version = $prompt_version
),
n_variants AS (
    SELECT user_id, count(DISTINCT variant) AS n FROM prompted GROUP BY user_id
),
answers AS (
    SELECT p.user_id, p.variant, p.items[coalesce(l.like_idx, c.like_idx)] AS like_item,
           p.items[c.dislike_idx] AS dislike_item
    FROM prompted p JOIN llm_cache c ON c.key = p.key
    LEFT JOIN llm_likes l ON l.key = p.key
    WHERE c.status = 'ok'
),
edges AS (
    SELECT user_id, variant, like_item AS item_id, 'positive' AS kind FROM answers
    UNION ALL
    SELECT user_id, variant, dislike_item AS item_id, 'negative' AS kind FROM answers
)
SELECT e.user_id, e.item_id, e.kind
FROM edges e JOIN n_variants v ON v.user_id = e.user_id
WHERE e.item_id IS NOT NULL
GROUP BY e.user_id, e.item_id, e.kind, v.n
HAVING count(DISTINCT e.variant) = v.n;

DELETE FROM augmented_edges
WHERE dataset = $dataset AND seed = $seed AND model = $model AND prompt_version = $prompt_version;

INSERT INTO augmented_edges
SELECT $dataset, $seed, a.user_id, a.item_id, a.kind, $model, $prompt_version, $run_id, now()
FROM llm_agreed a
WHERE NOT EXISTS (
    SELECT 1 FROM splits s
    WHERE s.dataset = $dataset AND s.seed = $seed AND s.user_id = a.user_id AND s.item_id = a.item_id
)
ORDER BY a.user_id, a.item_id;

INSERT OR REPLACE INTO augmented_merges
VALUES ($dataset, $seed, $model, $prompt_version, $scoring, (SELECT count(*) FROM llm_likes), $run_id, now());

-- What the merge did: answers agreed on, and edges now stored per kind (the agreed ones on a
-- rated pair were dropped).
SELECT
    (SELECT count(*) FROM llm_agreed) AS agreed,
    count(*) FILTER (WHERE kind = 'positive') AS positive,
    count(*) FILTER (WHERE kind = 'negative') AS negative
FROM augmented_edges
WHERE dataset = $dataset AND seed = $seed AND model = $model AND prompt_version = $prompt_version;
