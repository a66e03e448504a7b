-- Nexmark q11 (user sessions): bids per bidder session, a session closing after 10 s without bids.
-- Flink's legacy group window: sessions per bidder, the GROUP BY key.
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source, and the sink is
-- `nexmark_q11` run as a job.
CREATE TABLE nexmark_q11 (bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3))
WITH (connector = 'blackhole');

CREATE JOB nexmark_q11 AS
INSERT INTO nexmark_q11
SELECT
    B.bidder,
    count(*) as bid_count,
    SESSION_START(B.date_time, INTERVAL '10' SECOND) as starttime,
    SESSION_END(B.date_time, INTERVAL '10' SECOND) as endtime
FROM bid B
GROUP BY B.bidder, SESSION(B.date_time, INTERVAL '10' SECOND);
