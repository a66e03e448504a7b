-- Nexmark q15 (bidding statistics report): per day, the bids, bidders and auctions, split by price
-- rank with aggregate FILTER clauses over COUNT and COUNT(DISTINCT); an unbounded updating aggregate.
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source; the sink is
-- `nexmark_q15` run as a job, and declares the key its updating rows are applied by (Flink's
-- blackhole needs none).
CREATE TABLE nexmark_q15 (`day` VARCHAR, total_bids BIGINT, rank1_bids BIGINT, rank2_bids BIGINT, rank3_bids BIGINT,
    total_bidders BIGINT, rank1_bidders BIGINT, rank2_bidders BIGINT, rank3_bidders BIGINT,
    total_auctions BIGINT, rank1_auctions BIGINT, rank2_auctions BIGINT, rank3_auctions BIGINT,
    PRIMARY KEY (`day`) NOT ENFORCED)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q15 AS
INSERT INTO nexmark_q15
SELECT
     DATE_FORMAT(date_time, 'yyyy-MM-dd') as `day`,
     count(*) AS total_bids,
     count(*) filter (where price < 10000) AS rank1_bids,
     count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
     count(*) filter (where price >= 1000000) AS rank3_bids,
     count(distinct bidder) AS total_bidders,
     count(distinct bidder) filter (where price < 10000) AS rank1_bidders,
     count(distinct bidder) filter (where price >= 10000 and price < 1000000) AS rank2_bidders,
     count(distinct bidder) filter (where price >= 1000000) AS rank3_bidders,
     count(distinct auction) AS total_auctions,
     count(distinct auction) filter (where price < 10000) AS rank1_auctions,
     count(distinct auction) filter (where price >= 10000 and price < 1000000) AS rank2_auctions,
     count(distinct auction) filter (where price >= 1000000) AS rank3_auctions
FROM bid
GROUP BY DATE_FORMAT(date_time, 'yyyy-MM-dd');
