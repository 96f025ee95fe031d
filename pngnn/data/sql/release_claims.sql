-- A run ends (done, failed or interrupted): its remaining claims go, so another run need not
-- wait for their leases to expire.
DELETE FROM llm_claims WHERE owner = $owner;
