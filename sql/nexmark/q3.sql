-- Nexmark q3 (local item suggestion): who sells in category 10 in Oregon, Idaho or California, and
-- which auctions. A regular join of auction and person on the seller (both sides kept in state).
-- As published, except: the sources' `dateTime` is `date_time` in Weir's Nexmark source, and the
-- sink is `nexmark_q3` run as a job (the reference writes to `discard_sink`).
CREATE TABLE nexmark_q3 (name VARCHAR, city VARCHAR, state VARCHAR, id BIGINT)
WITH (connector = 'blackhole');

CREATE JOB nexmark_q3 AS
INSERT INTO nexmark_q3
SELECT
    P.name, P.city, P.state, A.id
FROM
    auction AS A INNER JOIN person AS P on A.seller = P.id
WHERE
    A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
