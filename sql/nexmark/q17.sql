-- Nexmark q17 (auction statistics report): per auction and day, the number of bids, split by
-- price rank with aggregate FILTER clauses, and price statistics; an unbounded updating aggregate.
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source; the sink is
-- `nexmark_q17` run as a job, and declares the key its updating rows are applied by (Flink's
-- blackhole needs none). AVG over BIGINT is a DOUBLE in Weir; the BIGINT column truncates it, as
-- Flink's integer AVG does.
CREATE TABLE nexmark_q17 (auction BIGINT, `day` VARCHAR, total_bids BIGINT, rank1_bids BIGINT, rank2_bids BIGINT,
    rank3_bids BIGINT, min_price BIGINT, max_price BIGINT, avg_price BIGINT, sum_price BIGINT,
    PRIMARY KEY (auction, `day`) NOT ENFORCED)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q17 AS
INSERT INTO nexmark_q17
SELECT
     auction,
     DATE_FORMAT(date_time, 'yyyy-MM-dd') as `day`,
     count(*) AS total_bids,
     count(*) filter (where price < 10000) AS rank1_bids,
     count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
     count(*) filter (where price >= 1000000) AS rank3_bids,
     min(price) AS min_price,
     max(price) AS max_price,
     avg(price) AS avg_price,
     sum(price) AS sum_price
FROM bid
GROUP BY auction, DATE_FORMAT(date_time, 'yyyy-MM-dd');
