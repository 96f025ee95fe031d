-- A split's augmented edges with their provenance (the Parquet artifact of a merge).
SELECT * FROM augmented_edges WHERE dataset = $dataset AND seed = $seed ORDER BY user_id, item_id
