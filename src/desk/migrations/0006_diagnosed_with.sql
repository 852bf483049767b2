-- A fingerprint (SHA-256) of the rules each stored diagnosis was made with: the policies, what the
-- app needs and the API. A `serve` started with other rules diagnoses those vehicles again from
-- their stored facts, without a request to Smartcar. NULL: made before this was recorded.
ALTER TABLE vehicles ADD COLUMN rules_sha256 text;
