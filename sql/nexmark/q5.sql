-- Nexmark q5 (hot items), the keyed part: bids per auction over hopping windows of 10 s sliding by
-- 2 s. The reference query then keeps, per window, the auctions with the most bids; that step
-- joins the counts with their per-window maximum, and Weir jobs have no JOIN yet.
CREATE TABLE nexmark_q5 (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), num BIGINT,
    PRIMARY KEY (auction, window_start))
WITH (connector = 'blackhole');

CREATE JOB nexmark_q5 AS
INSERT INTO nexmark_q5
SELECT auction, window_start, window_end, COUNT(*)
FROM HOP(bid, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;
