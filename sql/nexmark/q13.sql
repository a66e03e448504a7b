-- Nexmark q13 (bounded side input join): each bid enriched with the side input's value for its
-- auction id mod 10000, read as of the bid's processing time: a lookup join against a bounded
-- source, read whole when the job starts.
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source; the side input is a
-- Weir file source (CREATE SOURCE, Weir's file connector options) over
-- sql/data/nexmark/side_input.csv (10,000 keys, value 'side-<key>'); the sink is `nexmark_q13`
-- run as a job.
CREATE SOURCE side_input (
  key BIGINT,
  `value` VARCHAR
) WITH (
  connector = 'file',
  path = 'sql/data/nexmark/side_input.csv',
  format = 'csv'
);

CREATE TABLE nexmark_q13 (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), `value` VARCHAR)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q13 AS
INSERT INTO nexmark_q13
SELECT
    B.auction,
    B.bidder,
    B.price,
    B.date_time,
    S.`value`
FROM (SELECT *, PROCTIME() as p_time FROM bid) B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
ON mod(B.auction, 10000) = S.key;
