-- Edge agents report their own rejects (cumulative, by reason) in up/state;
-- keep the last counters so that the accounting gets their increase.
ALTER TABLE gateways ADD COLUMN edge_rejected jsonb NOT NULL DEFAULT '{}';
