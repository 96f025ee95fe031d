-- Claim for $owner up to $limit of the prompts in the frame `claim_wanted(key, pos)` (in
-- `pos` order) that nobody holds and nobody answered since $since (when the claimer's run
-- began), then say where each wanted prompt stands. Run in one transaction. Leases that
-- expired, and those of the owners in the frame `dead_owners(owner)` (processes gone),
-- are void first.
DELETE FROM llm_claims
WHERE expires <= now() OR owner IN (SELECT owner FROM dead_owners);

INSERT INTO llm_claims
SELECT w.key, $owner, $host, $pid, now() + to_seconds($lease_s)
FROM claim_wanted w
WHERE w.key NOT IN (SELECT key FROM llm_claims)
  AND NOT EXISTS (SELECT 1 FROM llm_cache c WHERE c.key = w.key AND c.created >= $since)
ORDER BY w.pos
LIMIT $limit;

-- state: 'claimed' (by $owner now: send it), 'answered' (by another run since $since:
-- done), 'held' (claimed by another run: wait), 'free' (left for the next chunk).
SELECT w.key,
       CASE WHEN l.owner = $owner THEN 'claimed'
            WHEN c.key IS NOT NULL THEN 'answered'
            WHEN l.key IS NOT NULL THEN 'held'
            ELSE 'free' END AS state
FROM claim_wanted w
LEFT JOIN llm_claims l ON l.key = w.key
LEFT JOIN llm_cache c ON c.key = w.key AND c.created >= $since
ORDER BY w.pos;
