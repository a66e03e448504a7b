-- Nexmark q7 (highest bid): the bids with the highest price of each 10 s tumbling window. The
-- window's maximum (a legacy group window, TUMBLE in GROUP BY) is joined back to the bids of the
-- same 10 s: the time bounds make it an interval join, whose state the watermark frees.
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source (the subquery's output
-- column keeps the name `dateTime`), and the sink is `nexmark_q7` run as a job.
CREATE TABLE nexmark_q7 (auction BIGINT, price BIGINT, bidder BIGINT, date_time TIMESTAMP(3), extra VARCHAR)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q7 AS
INSERT INTO nexmark_q7
SELECT B.auction, B.price, B.bidder, B.date_time, B.extra
from bid B
join (
  SELECT MAX(B1.price) AS maxprice, TUMBLE_ROWTIME(B1.date_time, INTERVAL '10' SECOND) as dateTime
  FROM bid B1
  GROUP BY TUMBLE(B1.date_time, INTERVAL '10' SECOND)
) B1
on B.price = B1.maxprice
where B.date_time between B1.dateTime  - INTERVAL '10' SECOND and B1.dateTime;
