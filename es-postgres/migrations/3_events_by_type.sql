-- Filtered reads for listeners that handle a few event types (a projection over 1% of the
-- log reads that 1%): the rows of one type in the global log's order.
CREATE INDEX events_type_order ON events (event_type, transaction_id, position);
