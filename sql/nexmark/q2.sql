-- Nexmark q2 (selection): bids on a fixed set of auctions.
-- As published, except: the sink is `nexmark_q2` run as a job.
CREATE TABLE nexmark_q2 (auction BIGINT, price BIGINT)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q2 AS
INSERT INTO nexmark_q2
SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
