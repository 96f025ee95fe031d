-- The answers of the keys $keys are being written by $owner (same transaction): drop those
-- claims, and renew the owner's other leases (it is alive and working).
DELETE FROM llm_claims WHERE owner = $owner AND list_contains($keys, key);

UPDATE llm_claims SET expires = now() + to_seconds($lease_s) WHERE owner = $owner;
