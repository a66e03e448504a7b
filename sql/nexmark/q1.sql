-- Nexmark q1 (currency conversion): bid prices from dollars to euros.
CREATE TABLE nexmark_q1 (auction BIGINT, bidder BIGINT, price DOUBLE, date_time TIMESTAMP(3), extra VARCHAR)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q1 AS
INSERT INTO nexmark_q1
SELECT auction, bidder, 0.908 * CAST(price AS DOUBLE), date_time, extra FROM bid;
