-- Nexmark q7 (highest bid), the aggregate part: the highest price of every 10 s tumbling window.
-- The reference query joins this maximum back to the bids to return the winning bid rows; Weir
-- jobs have no JOIN yet. A window aggregate without a key runs on one subtask.
CREATE TABLE nexmark_q7 (window_start TIMESTAMP(3), window_end TIMESTAMP(3), max_price BIGINT, bids BIGINT,
    PRIMARY KEY (window_start))
WITH (connector = 'blackhole');

CREATE JOB nexmark_q7 AS
INSERT INTO nexmark_q7
SELECT window_start, window_end, MAX(price), COUNT(*)
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY window_start, window_end;
