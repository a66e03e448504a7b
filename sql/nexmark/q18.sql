-- Nexmark q18 (find last bid): each bidder's last bid on each auction. Deduplication keeping the
-- last row by event time (ROW_NUMBER() ... ORDER BY dateTime DESC, rank 1): a Top-N of one row per
-- (bidder, auction) whose output updates when a later bid comes.
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source, and the sink is
-- `nexmark_q18` run as a job, keyed by the partition key its updating rows are applied by
-- (Flink's blackhole needs none).
CREATE TABLE nexmark_q18 (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
    date_time TIMESTAMP(3), extra VARCHAR, PRIMARY KEY (auction, bidder) NOT ENFORCED)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q18 AS
INSERT INTO nexmark_q18
SELECT auction, bidder, price, channel, url, date_time, extra
 FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY date_time DESC) AS rank_number
       FROM bid)
 WHERE rank_number <= 1;
