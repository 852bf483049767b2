-- When the owner connected the car, as the listing says (RFC 3339 text, kept as given). Some desks
-- got this column from an earlier text of 0003: IF NOT EXISTS brings every desk to one shape.
ALTER TABLE vehicles ADD COLUMN IF NOT EXISTS connected_at text;
