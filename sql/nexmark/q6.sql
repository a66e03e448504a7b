-- Nexmark q6 (average selling price by seller): per seller, the average of the winning bids of
-- its last 10 closed auctions. REFUSED by Weir, as by Flink (the nexmark project lists q6 as not
-- supported by Flink): the inner query selects B.dateTime, which it does not group by, and an OVER
-- aggregation over the updating rows of an aggregate is not supported in a job.
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source, and the sink is
-- `nexmark_q6` run as a job.
CREATE TABLE nexmark_q6 (seller VARCHAR, avg_price BIGINT)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q6 AS
INSERT INTO nexmark_q6
SELECT
    Q.seller,
    AVG(Q.final) OVER
        (PARTITION BY Q.seller ORDER BY Q.date_time ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
FROM (
    SELECT MAX(B.price) AS final, A.seller, B.date_time
    FROM auction AS A, bid AS B
    WHERE A.id = B.auction and B.date_time between A.date_time and A.expires
    GROUP BY A.id, A.seller
) AS Q;
