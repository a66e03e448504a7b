-- Nexmark bids → hopping windows (slide 1 s, size 2 s) → the highest bid and bid count per auction
-- and window in a result table → query it. Run with:  ./dev.sh weir run examples/nexmark_hot_bids.sql
-- Change 'parallelism' to compare: the rows are the same.
CREATE SOURCE bids (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3),
    WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
WITH (connector = 'nexmark', 'nexmark.table' = 'bid', 'max.events' = '200000', 'events.per.second' = '50000', seed = '42');

CREATE TABLE hot_bids (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3),
    max_price BIGINT, bids BIGINT, PRIMARY KEY (auction, window_start));

CREATE JOB hot_bids_job WITH ('parallelism' = '2') AS
INSERT INTO hot_bids
SELECT auction, window_start, window_end, MAX(price), COUNT(*)
FROM HOP(bids, date_time, INTERVAL '1' SECOND, INTERVAL '2' SECOND)
GROUP BY auction, window_start, window_end;

WAIT JOB hot_bids_job;

SELECT auction, window_start, window_end, max_price, bids
FROM hot_bids ORDER BY bids DESC, max_price DESC, auction, window_start LIMIT 10;

SELECT COUNT(*) AS windows, SUM(bids) AS bid_rows FROM hot_bids;
