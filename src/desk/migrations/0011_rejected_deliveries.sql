-- Webhook deliveries the desk refused, kept for the operator (`vtriage serve --rejected`): never
-- read by the diagnosis. The writer keeps the newest rows only (by count and by age).
CREATE TABLE IF NOT EXISTS rejected_deliveries (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    why         text NOT NULL,
    status      integer NOT NULL,
    -- The row as `desk::rejected::Rejected` serializes it (redacted, cut to size).
    detail      jsonb NOT NULL
);

CREATE INDEX IF NOT EXISTS rejected_deliveries_at ON rejected_deliveries (at);
