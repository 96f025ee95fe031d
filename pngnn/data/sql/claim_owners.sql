-- The other processes on this host that hold claims (see llm.sql), so the claimer can
-- void those of a process that is gone without waiting for their leases to expire.
SELECT DISTINCT owner, pid
FROM llm_claims
WHERE host = $host AND owner <> $owner;
