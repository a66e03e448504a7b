-- Nexmark q19 (auction top-10 price): the 10 highest bids of each auction, with their rank. An
-- updating Top-N: a bid that ranks pushes the lower ones down a rank.
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source, and the sink is
-- `nexmark_q19` run as a job, keyed by (auction, rank) as Flink's upsert sinks key a Top-N that
-- outputs its rank (Flink's blackhole needs none).
CREATE TABLE nexmark_q19 (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
    date_time TIMESTAMP(3), extra VARCHAR, rank_number BIGINT, PRIMARY KEY (auction, rank_number) NOT ENFORCED)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q19 AS
INSERT INTO nexmark_q19
SELECT * FROM
(SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
WHERE rank_number <= 10;
