-- Nexmark q14 (calculation): bids priced between 1M and 50M euros, with the time of day they were
-- placed and how many 'c' their extra field holds (a user-defined function).
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source; the sink is
-- `nexmark_q14` run as a job; and the benchmark's UDF `count_char` is built into Weir, so its
-- `CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar';` (a Java class) is left out.
CREATE TABLE nexmark_q14 (auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), bidTimeType VARCHAR,
    date_time TIMESTAMP(3), extra VARCHAR, c_counts BIGINT)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q14 AS
INSERT INTO nexmark_q14
SELECT
    auction,
    bidder,
    0.908 * price as price,
    CASE
        WHEN HOUR(date_time) >= 8 AND HOUR(date_time) <= 18 THEN 'dayTime'
        WHEN HOUR(date_time) <= 6 OR HOUR(date_time) >= 20 THEN 'nightTime'
        ELSE 'otherTime'
    END AS bidTimeType,
    date_time,
    extra,
    count_char(extra, 'c') AS c_counts
FROM bid
WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000;
