-- Nexmark q10 (log to file system): every bid, written as CSV files partitioned by its day and
-- minute. Files are finished exactly-once at each checkpoint (or at the end of a bounded input).
-- As published, except: `dateTime` is `date_time` in Weir's Nexmark source; the sink is
-- `nexmark_q10` run as a job; the files go to `nexmark-output/q10/bid/` under the directory Weir
-- runs in (the published `file://${NEXMARK_DIR}/data/output/${SUBMIT_TIME}/bid/` names the
-- benchmark runner's directories); and the partition-commit and rolling options are left out:
-- Weir finishes a partition's files at every checkpoint, with no success file, as if
-- 'sink.rolling-policy.rollover-interval' were the checkpoint interval.
--   'sink.partition-commit.trigger' = 'partition-time', 'sink.partition-commit.delay' = '1 min',
--   'sink.partition-commit.policy.kind' = 'success-file',
--   'partition.time-extractor.timestamp-pattern' = '$dt $hm:00',
--   'sink.rolling-policy.rollover-interval' = '1min'
CREATE TABLE nexmark_q10 (
    auction  BIGINT,
    bidder  BIGINT,
    price  BIGINT,
    date_time  TIMESTAMP(3),
    extra  VARCHAR,
    dt STRING,
    hm STRING
) PARTITIONED BY (dt, hm) WITH (
  'connector' = 'filesystem',
  'path' = 'nexmark-output/q10/bid/',
  'format' = 'csv'
);

CREATE JOB nexmark_q10 AS
INSERT INTO nexmark_q10
SELECT auction, bidder, price, date_time, extra, DATE_FORMAT(date_time, 'yyyy-MM-dd'), DATE_FORMAT(date_time, 'HH:mm')
FROM bid;
