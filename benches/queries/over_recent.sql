-- OVER aggregation on event time: each bid with its auction's bid count, price total and highest
-- price over the 10 seconds before it (Flink's OverAggregate, RANGE frame). Every bid comes out
-- once. Not a published Nexmark query (q6, the published OVER query, is refused by Flink and Weir
-- alike). Run by `weir bench query --query benches/queries/over_recent.sql`, which creates the
-- `bid` source; `--sink table` writes a result table instead of the blackhole.

CREATE TABLE over_recent (auction BIGINT, price BIGINT, date_time TIMESTAMP(3), recent_bids BIGINT,
    recent_total BIGINT, recent_max BIGINT)
WITH (connector = 'blackhole');

CREATE JOB over_recent AS
INSERT INTO over_recent
SELECT auction, price, date_time, COUNT(*) OVER w, SUM(price) OVER w, MAX(price) OVER w
FROM bid
WINDOW w AS (PARTITION BY auction ORDER BY date_time RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW);
