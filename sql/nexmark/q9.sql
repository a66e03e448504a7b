-- Nexmark q9 (winning bids): each auction's winning bid, the highest bid placed while it was open
-- (the earliest of equal ones). A regular join of auction and bid (append-only, both inputs are)
-- ranked per auction by a Top-N of one row, which updates as higher bids come.
-- As published, except: Weir's Nexmark source spells `dateTime` `date_time`, `itemName`
-- `item_name` and `initialBid` `initial_bid`; the sink is `nexmark_q9` run as a job, keyed by the
-- auction its updating rows are applied by (Flink's blackhole needs none).
CREATE TABLE nexmark_q9 (id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
    dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR,
    auction BIGINT, bidder BIGINT, price BIGINT, bid_dateTime TIMESTAMP(3), bid_extra VARCHAR,
    PRIMARY KEY (id) NOT ENFORCED)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q9 AS
INSERT INTO nexmark_q9
SELECT
    id, item_name, description, initial_bid, reserve, date_time, expires, seller, category, extra,
    auction, bidder, price, bid_dateTime, bid_extra
FROM (
   SELECT A.*, B.auction, B.bidder, B.price, B.date_time AS bid_dateTime, B.extra AS bid_extra,
     ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.date_time ASC) AS rownum
   FROM auction A, bid B
   WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires
)
WHERE rownum <= 1;
