-- Runtime fault flags (see docs/scenarios.md), one row per flag that was ever
-- set. Kept in the service's database so every replica sees the same flags and
-- a crash-looping service remembers how many more crashes it owes.
CREATE TABLE fault_flags (
    name       text        PRIMARY KEY,
    value      bigint      NOT NULL CHECK (value >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Count redeliveries the inbox absorbed (a dropped ack, a consumer killed
-- mid-message): visible proof that duplicates arrived and had no effect.
ALTER TABLE inbox ADD COLUMN duplicate_deliveries integer NOT NULL DEFAULT 0;
