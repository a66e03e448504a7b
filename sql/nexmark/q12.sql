-- Nexmark q12 (processing-time windows): bids per bidder in 10 s tumbling windows of processing
-- time, closed by the wall clock (or at the end of a bounded input).
-- As published, except: the sink is `nexmark_q12` run as a job.
CREATE TABLE nexmark_q12 (bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3))
WITH (connector = 'blackhole');

CREATE JOB nexmark_q12 AS
INSERT INTO nexmark_q12
SELECT
    B.bidder,
    count(*) as bid_count,
    TUMBLE_START(B.p_time, INTERVAL '10' SECOND) as starttime,
    TUMBLE_END(B.p_time, INTERVAL '10' SECOND) as endtime
FROM (SELECT *, PROCTIME() as p_time FROM bid) B
GROUP BY B.bidder, TUMBLE(B.p_time, INTERVAL '10' SECOND);
