-- A split's augmented edges with their provenance (the Parquet artifact of a merge), the
-- scoring that chose the likes included (augmented_merges).
SELECT e.*, m.scoring
FROM augmented_edges e
LEFT JOIN augmented_merges m USING (dataset, seed, model, prompt_version)
WHERE e.dataset = $dataset AND e.seed = $seed
ORDER BY e.user_id, e.item_id
