-- The status and failure class of each key in the frame `wanted_keys(key)` that has a
-- cached outcome.
SELECT c.key, c.status, c.failure
FROM llm_cache c
JOIN (SELECT DISTINCT key FROM wanted_keys) w USING (key);
