-- Keyed 10 s TUMBLE with COUNT, SUM and MAX per auction: the query of issue 13's side-by-side
-- comparison with Flink (benches/compare_flink.py --query tumble-keyed). Not a published Nexmark
-- query. Run by `weir bench query --query benches/queries/tumble_keyed.sql`, which creates the
-- `bid` source.

CREATE TABLE tumble_keyed (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT,
    total_price BIGINT, max_price BIGINT, PRIMARY KEY (auction, window_start))
WITH (connector = 'blackhole');

CREATE JOB tumble_keyed AS
INSERT INTO tumble_keyed
SELECT auction, window_start, window_end, COUNT(*), SUM(price), MAX(price)
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;
