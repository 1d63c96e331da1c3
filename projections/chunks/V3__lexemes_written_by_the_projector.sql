-- `tsv` stops being a generated column: the projector writes it, computed
-- with the same `to_tsvector('english', text)`. A rebuild can then take a
-- chunk's lexemes from the live table when the same chunk (id, run, text)
-- is there, instead of computing them again: to_tsvector is most of what a
-- rebuild costs PostgreSQL (decision 010). Existing values stay.
ALTER TABLE chunks ALTER COLUMN tsv DROP EXPRESSION;
