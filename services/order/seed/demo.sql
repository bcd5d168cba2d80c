-- The order service has no demo data: orders are what you place yourself.
-- (Kept so all three services load demo data the same way.)
SELECT 1;
