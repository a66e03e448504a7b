-- Nexmark q1 (currency conversion): bid prices from dollars to euros.
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source, and the sink is
-- `nexmark_q1` run as a job.
CREATE TABLE nexmark_q1 (auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), date_time TIMESTAMP(3), extra VARCHAR)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q1 AS
INSERT INTO nexmark_q1
SELECT
    auction,
    bidder,
    0.908 * price as price,
    date_time,
    extra
FROM bid;
