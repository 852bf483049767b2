-- A probe request may ask for a new answer even inside the freshness window (an agent pressing `r`
-- after the customer paired the key); a plain one is served from a fresh report.
ALTER TABLE probe_requests ADD COLUMN forced boolean NOT NULL DEFAULT false;
