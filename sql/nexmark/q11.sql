-- Nexmark q11 (user sessions): bids per bidder session, a session closing after 10 s without bids.
CREATE TABLE nexmark_q11 (bidder BIGINT, bid_count BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3),
    PRIMARY KEY (bidder, window_start))
WITH (connector = 'blackhole');

CREATE JOB nexmark_q11 AS
INSERT INTO nexmark_q11
SELECT bidder, COUNT(*), window_start, window_end
FROM SESSION(bid, date_time, INTERVAL '10' SECOND)
GROUP BY bidder, window_start, window_end;
