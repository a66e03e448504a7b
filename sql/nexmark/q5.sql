-- Nexmark q5 (hot items): per 10 s window sliding by 2 s, the auctions with the most bids. The
-- bids per auction and window (a HOP aggregate) are joined with each window's maximum, itself an
-- aggregate grouped by the counts' window (Flink's window-attached aggregate: one row per window,
-- when it closes). Both inputs of the join are append-only, so the join is too.
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source, and the sink is
-- `nexmark_q5` run as a job. (The counts alone are `benches/queries/hop_counts.sql`.)
CREATE TABLE nexmark_q5 (auction BIGINT, num BIGINT)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q5 AS
INSERT INTO nexmark_q5
SELECT AuctionBids.auction, AuctionBids.num
 FROM (
   SELECT
     auction,
     count(*) AS num,
     window_start AS starttime,
     window_end AS endtime
   FROM TABLE(
           HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
   GROUP BY auction, window_start, window_end
 ) AS AuctionBids
 JOIN (
   SELECT
     max(CountBids.num) AS maxn,
     CountBids.starttime,
     CountBids.endtime
   FROM (
     SELECT
       count(*) AS num,
       window_start AS starttime,
       window_end AS endtime
     FROM TABLE(
             HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
     GROUP BY auction, window_start, window_end
     ) AS CountBids
   GROUP BY CountBids.starttime, CountBids.endtime
 ) AS MaxBids
 ON AuctionBids.starttime = MaxBids.starttime AND
    AuctionBids.endtime = MaxBids.endtime AND
    AuctionBids.num >= MaxBids.maxn;
