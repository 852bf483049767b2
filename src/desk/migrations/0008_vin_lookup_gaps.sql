-- How a VIN lookup that found nothing may still have missed the car, in one line (cars whose VIN
-- could not be read, a stop at Smartcar's 429); NULL when every candidate was read.
ALTER TABLE vin_lookups ADD COLUMN IF NOT EXISTS gaps text;
