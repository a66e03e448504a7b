-- Nexmark q22 (URL directories): each bid with the first three directories of its URL; a
-- SPLIT_INDEX projection, stateless.
-- As published, except: the sink is `nexmark_q22` run as a job.
CREATE TABLE nexmark_q22 (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, dir1 VARCHAR, dir2 VARCHAR,
    dir3 VARCHAR)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q22 AS
INSERT INTO nexmark_q22
SELECT
    auction, bidder, price, channel,
    SPLIT_INDEX(url, '/', 3) as dir1,
    SPLIT_INDEX(url, '/', 4) as dir2,
    SPLIT_INDEX(url, '/', 5) as dir3 FROM bid;
