-- A probe request may ask for a new answer even inside the freshness window (an agent pressing `r`
-- after the customer paired the key); a plain one is served from a fresh report.
ALTER TABLE probe_requests ADD COLUMN forced boolean NOT NULL DEFAULT false;

-- When the owner connected the car, as the listing says (RFC 3339 text, kept as given).
ALTER TABLE vehicles ADD COLUMN connected_at text;

-- A VIN read by a probe or a lookup, so an agent finds the car by it.
ALTER TABLE vehicles ADD COLUMN vin text;
CREATE INDEX vehicles_vin ON vehicles (vin);

-- An agent looking a VIN up among the cars whose VIN the desk has not read: the prober reads the
-- VINs of the cars whose make and year fit, nearest first, and stops at the match.
CREATE TABLE vin_lookups (
    vin          text PRIMARY KEY,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    vehicle_id   text,
    requests     bigint
);
