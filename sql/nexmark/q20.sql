-- Nexmark q20 (expand bid with auction): each bid with its auction's columns, for auctions of
-- category 10; a regular inner join of two append-only inputs (so append-only itself).
-- As published, except: Weir's Nexmark source spells `dateTime` `date_time`, `itemName`
-- `item_name` and `initialBid` `initial_bid`; the sink is `nexmark_q20` run as a job.
CREATE TABLE nexmark_q20 (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
    bid_dateTime TIMESTAMP(3), bid_extra VARCHAR, itemName VARCHAR, description VARCHAR, initialBid BIGINT,
    reserve BIGINT, auction_dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT,
    auction_extra VARCHAR)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q20 AS
INSERT INTO nexmark_q20
SELECT
    auction, bidder, price, channel, url, B.date_time, B.extra,
    item_name, description, initial_bid, reserve, A.date_time, expires, seller, category, A.extra
FROM
    bid AS B INNER JOIN auction AS A on B.auction = A.id
WHERE A.category = 10;
