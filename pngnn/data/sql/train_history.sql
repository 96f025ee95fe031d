-- The train ratings of the users registered as `prompt_users(user_id)`, with the rated
-- item's title, year, genres, text and external id: the pool a prompt's history is sampled from. Only the
-- train part: validation and test ratings must never reach the LLM.
SELECT s.user_id, s.item_id, s.rating, i.title, i.year, i.genres, i.text, i.external_id
FROM splits s
JOIN prompt_users p ON p.user_id = s.user_id
JOIN items i ON i.dataset = s.dataset AND i.item_id = s.item_id
WHERE s.dataset = $dataset AND s.seed = $seed AND s.part = 'train';
