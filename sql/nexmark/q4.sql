-- Nexmark q4 (average price per category): the winning bid of every auction (its highest bid while
-- it was open), averaged per category. A regular join of auction and bid, an aggregate per auction
-- that updates as higher bids come, and an aggregate over those updates (it takes the old maximum
-- back). As published, except: `dateTime` is `date_time` in Weir's Nexmark source; the sink is
-- `nexmark_q4` run as a job, and declares the key its updating rows are applied by (Flink's
-- blackhole needs none). AVG over BIGINT is a DOUBLE in Weir; the BIGINT column truncates it, as
-- Flink's integer AVG does.
CREATE TABLE nexmark_q4 (id BIGINT, final BIGINT, PRIMARY KEY (id) NOT ENFORCED)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q4 AS
INSERT INTO nexmark_q4
SELECT
    Q.category,
    AVG(Q.final)
FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires
    GROUP BY A.id, A.category
) Q
GROUP BY Q.category;
