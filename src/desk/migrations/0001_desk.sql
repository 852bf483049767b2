-- The desk's store: vehicles with their latest diagnosis, every status change, the webhook events,
-- the probes and who asked for what.

CREATE TABLE vehicles (
    vehicle_id  text PRIMARY KEY,
    user_id     text,
    make        text,
    model       text,
    year        integer,
    -- HEALTHY, UNKNOWN, WARNING, DEGRADED or BLOCKED; the finding that explains it.
    status      text NOT NULL DEFAULT 'UNKNOWN',
    finding     text,
    diagnosis   jsonb,
    -- Webhook errors and signals (newest of each) and the last probe: what the diagnosis reads.
    facts       jsonb NOT NULL DEFAULT '{}'::jsonb,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX vehicles_status ON vehicles (status);

CREATE TABLE status_history (
    id          bigserial PRIMARY KEY,
    vehicle_id  text NOT NULL REFERENCES vehicles (vehicle_id) ON DELETE CASCADE,
    status      text NOT NULL,
    finding     text,
    at          timestamptz NOT NULL DEFAULT now(),
    -- `webhook <event id>` or `probe <probe result id>`.
    cause       text NOT NULL
);

CREATE INDEX status_history_vehicle ON status_history (vehicle_id, at);

CREATE TABLE webhook_events (
    -- Smartcar's eventId; deliveries of one event share it, so it deduplicates retries.
    event_id    text PRIMARY KEY,
    event_type  text NOT NULL,
    vehicle_id  text,
    occurred_at timestamptz,
    received_at timestamptz NOT NULL DEFAULT now(),
    body        jsonb NOT NULL
);

CREATE INDEX webhook_events_received ON webhook_events (received_at);

CREATE TABLE probe_results (
    id          bigserial PRIMARY KEY,
    vehicle_id  text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    status      text NOT NULL,
    report      jsonb NOT NULL
);

CREATE INDEX probe_results_vehicle ON probe_results (vehicle_id, at);

CREATE TABLE probe_requests (
    id              bigserial PRIMARY KEY,
    vehicle_id      text NOT NULL,
    -- focus, visible or sweep.
    priority        text NOT NULL DEFAULT 'focus',
    requested_by    text NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    served_at       timestamptz,
    probe_result_id bigint REFERENCES probe_results (id)
);

CREATE INDEX probe_requests_pending ON probe_requests (requested_at) WHERE served_at IS NULL;

CREATE TABLE audit (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    action   text NOT NULL,
    subject  text,
    detail   jsonb
);

CREATE INDEX audit_at ON audit (at);
