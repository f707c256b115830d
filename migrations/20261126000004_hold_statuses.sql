-- Holds: a booking can be PENDING (its seats held until `expires_at`) and then EXPIRED. New enum
-- values cannot be used in the transaction that adds them, so they come in a migration of
-- their own.
ALTER TYPE booking_status ADD VALUE IF NOT EXISTS 'PENDING';
ALTER TYPE booking_status ADD VALUE IF NOT EXISTS 'EXPIRED';
