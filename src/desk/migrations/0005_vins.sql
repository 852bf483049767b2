-- A VIN read by a probe or a lookup, so an agent finds the car by it. Some desks got these from an
-- earlier text of 0003: IF NOT EXISTS brings every desk to one shape.
ALTER TABLE vehicles ADD COLUMN IF NOT EXISTS vin text;
CREATE INDEX IF NOT EXISTS vehicles_vin ON vehicles (vin);

-- An agent looking a VIN up among the cars whose VIN the desk has not read: the prober reads the
-- VINs of the cars whose make and year fit, nearest first, and stops at the match.
CREATE TABLE IF NOT EXISTS vin_lookups (
    vin          text PRIMARY KEY,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    vehicle_id   text,
    requests     bigint
);
