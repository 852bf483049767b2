-- What pruning old rows reads: each table by age, and whether a probe result is still referenced.
CREATE INDEX IF NOT EXISTS status_history_at ON status_history (at);
CREATE INDEX IF NOT EXISTS probe_results_at ON probe_results (at);
CREATE INDEX IF NOT EXISTS probe_requests_requested ON probe_requests (requested_at);
CREATE INDEX IF NOT EXISTS probe_requests_result ON probe_requests (probe_result_id);
