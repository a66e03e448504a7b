-- Nexmark q17 (auction statistics): per auction and day, the number of bids and price statistics.
-- The reference query also splits the count by price rank with COUNT(*) FILTER (WHERE ...);
-- Weir's aggregates have no FILTER clause yet.
CREATE TABLE nexmark_q17 (auction BIGINT, window_start TIMESTAMP(3), total_bids BIGINT, min_price BIGINT,
    max_price BIGINT, avg_price DOUBLE, sum_price BIGINT, PRIMARY KEY (auction, window_start))
WITH (connector = 'blackhole');

CREATE JOB nexmark_q17 AS
INSERT INTO nexmark_q17
SELECT auction, window_start, COUNT(*), MIN(price), MAX(price), AVG(price), SUM(price)
FROM TUMBLE(bid, date_time, INTERVAL '1' DAY)
GROUP BY auction, window_start, window_end;
