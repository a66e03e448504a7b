-- Nexmark q2 (selection): bids on a fixed set of auctions.
CREATE TABLE nexmark_q2 (auction BIGINT, price BIGINT)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q2 AS
INSERT INTO nexmark_q2
SELECT auction, price FROM bid WHERE auction % 123 = 0;
