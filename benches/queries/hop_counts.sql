-- The keyed part of Nexmark q5: bids per auction over hopping windows of 10 s sliding by 2 s. The
-- benchmark's `hop` query (`weir bench query --query benches/queries/hop_counts.sql`,
-- `benches/compare_flink.py --query hop`); Weir's `q5` figures before 2026-12-05 are this query.
CREATE TABLE nexmark_hop (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), num BIGINT,
    PRIMARY KEY (auction, window_start))
WITH (connector = 'blackhole');

CREATE JOB nexmark_hop AS
INSERT INTO nexmark_hop
SELECT auction, window_start, window_end, COUNT(*)
FROM HOP(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;
