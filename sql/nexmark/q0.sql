-- Nexmark q0 (pass-through): every bid, unchanged. Measures the source, the job's plumbing and the
-- sink. Sources: see README.md in this directory. As published, except: `dateTime` is `date_time`
-- in Weir's Nexmark source, and the sink is `nexmark_q0` run as a job.
CREATE TABLE nexmark_q0 (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), extra VARCHAR)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q0 AS
INSERT INTO nexmark_q0
SELECT auction, bidder, price, date_time, extra FROM bid;
