-- Demo catalogue for the local stack, docker compose and tests (SEED_DEMO_DATA=true).
-- Idempotent: an existing product is left as it is, so restarting a seeded service
-- never undoes sales or restocks. Prices are in cents.
INSERT INTO products (sku, name, unit_price_minor, available) VALUES
    ('KB-01',     'Mechanical keyboard',        8900,  100),
    ('MOUSE-01',  'Wireless mouse',             2900,  200),
    ('MON-27',    '27-inch monitor',           24900,   25),
    ('USB-C-1M',  'USB-C cable, 1 m',            990, 1000),
    ('DOCK-01',   'USB-C dock',                12900,   40),
    ('CAM-HD',    'HD webcam',                  5900,   60),
    ('HEAD-01',   'Noise-cancelling headset',  19900,   30),
    ('STAND-01',  'Laptop stand',               3900,   80),
    ('LAMP-01',   'Desk lamp',                  4500,   50),
    ('CHAIR-01',  'Office chair',              29900,   10),
    ('MIC-01',    'USB microphone',             9900,   15),
    ('LAST-ONE',  'Limited edition mug',        1500,    1)
ON CONFLICT (sku) DO NOTHING;
