-- The PostgreSQL table of examples/payments/pipeline.yaml. The postgres output fills
-- each column from the confirmation field of the same name (every column must have one)
-- and upserts on the primary key.
CREATE TABLE IF NOT EXISTS account_balances (
    account_id         TEXT PRIMARY KEY,
    currency           TEXT NOT NULL,
    -- The sum of the account's completed payments: exact decimals, never floats.
    balance            NUMERIC(15, 2) NOT NULL,
    balance_cents      BIGINT NOT NULL,
    completed_payments BIGINT NOT NULL,
    -- The latest payment applied, and its event time (ms since the epoch).
    payment_id         TEXT NOT NULL,
    "timestamp"        BIGINT NOT NULL
);
