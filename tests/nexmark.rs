//! The Nexmark queries of `sql/nexmark/` give the rows DataFusion computes in batch over the same
//! bounded sources (an independent implementation of the same SQL: its hash aggregate, date_bin,
//! window functions for sessions). The streaming side runs at parallelism 2 on RocksDB with a
//! tiny in-memory cache (so partial states spill) and checkpoints every 200 ms, the way `weir bench
//! query` runs it; the queries' blackhole sinks become stored tables so the rows can be read back.

use weir::Session;
use weir::bench::query::BenchInput;

mod common;
use common::rows;

/// 20 s of event time: several 2 s / 10 s hops and 10 s tumbles, bidder sessions that close.
const INPUT: BenchInput = BenchInput::Nexmark {
    events: 400_000,
    events_per_second: 20_000,
    paced: false,
};

/// Runs `sql/nexmark/<query>.sql` into a stored table and returns the job's late-row count.
async fn run_query(session: &Session, query: &str) -> u64 {
    let path = format!("sql/nexmark/{query}.sql");
    let sql = std::fs::read_to_string(&path).expect("query file");
    let blackhole = "WITH (connector = 'blackhole')";
    assert_eq!(sql.matches(blackhole).count(), 1, "{path} declares one blackhole table");
    session.execute(&sql.replace(blackhole, "")).await.expect(&path);
    session.execute(&format!("WAIT JOB nexmark_{query}")).await.expect("wait");
    let status = rows(
        session,
        &format!("SELECT status, late_rows_dropped, rows_out FROM weir_jobs WHERE name = 'nexmark_{query}'"),
    )
    .await;
    assert_eq!(status[0][0], "FINISHED", "{query}: {status:?}");
    assert!(status[0][2].parse::<u64>().expect("rows_out") > 0, "{query} wrote rows");
    status[0][1].parse().expect("late rows")
}

/// Asserts the table holds exactly the rows of `oracle` (as multisets), and returns their number.
async fn assert_same_rows(session: &Session, table: &str, oracle: &str) -> usize {
    let count = |sql: String| async move { rows(session, &sql).await[0][0].parse::<usize>().expect("count") };
    let expected = count(format!("SELECT COUNT(*) FROM ({oracle})")).await;
    let actual = count(format!("SELECT COUNT(*) FROM {table}")).await;
    assert_eq!(actual, expected, "{table}: row count");
    let missing = rows(session, &format!("{oracle} EXCEPT ALL SELECT * FROM {table} LIMIT 5")).await;
    assert!(missing.is_empty(), "{table} lacks {missing:?}");
    let extra = rows(session, &format!("SELECT * FROM {table} EXCEPT ALL {oracle} LIMIT 5")).await;
    assert!(extra.is_empty(), "{table} has rows the oracle does not: {extra:?}");
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_queries_match_a_batch_computation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute(
            "SET 'parallelism' = '2'; SET 'state.backend' = 'rocksdb'; SET 'state.cache.max-entries' = '500';
             SET 'execution.checkpointing.interval' = '200ms';",
        )
        .await
        .expect("settings");
    session.execute(&INPUT.sources_sql()).await.expect("sources");
    // Event time in whole milliseconds, for window arithmetic on the batch side.
    let ms = "CAST(date_time AS BIGINT)";
    // q15-q17's price ranks, counted without FILTER clauses: with CASE, which DataFusion's batch
    // aggregates evaluate themselves (the job's FILTER becomes CASE inside Weir's accumulators).
    let ranks = ["price < 10000", "price >= 10000 AND price < 1000000", "price >= 1000000"];
    let ranked = |of: &str| {
        let sums = ranks.iter().map(|r| format!("SUM(CASE WHEN {r} THEN 1 ELSE 0 END)"));
        let distincts = ranks.iter().map(|r| format!("COUNT(DISTINCT CASE WHEN {r} THEN {of} END)"));
        if of == "*" { sums.collect::<Vec<_>>() } else { distincts.collect() }.join(", ")
    };
    let (bids, bidders, auctions) = (ranked("*"), ranked("bidder"), ranked("auction"));
    let checks: Vec<(&str, String)> = vec![
        ("q0", "SELECT auction, bidder, price, date_time, extra FROM bid".into()),
        ("q1", "SELECT auction, bidder, CAST(0.908 * price AS DECIMAL(23, 3)), date_time, extra FROM bid".into()),
        ("q2", "SELECT auction, price FROM bid WHERE auction % 123 = 0".into()),
        (
            "q5",
            // Each bid is in the 5 windows starting at its 2 s slot and the 4 slots before; per
            // window the auctions whose count is the window's maximum.
            {
                let counts = format!(
                    "SELECT auction, s, COUNT(*) AS num
                     FROM (SELECT auction, ({ms} / 2000 - j) * 2000 AS s FROM bid CROSS JOIN (VALUES (0), (1), (2), (3), (4)) AS o(j))
                     GROUP BY auction, s"
                );
                format!(
                    "SELECT c.auction, c.num FROM ({counts}) c
                     JOIN (SELECT s, MAX(num) AS maxn FROM ({counts}) GROUP BY s) m ON c.s = m.s AND c.num >= m.maxn"
                )
            },
        ),
        (
            "q3",
            "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id
             WHERE a.category = 10 AND p.state IN ('OR', 'ID', 'CA')"
                .into(),
        ),
        (
            "q4",
            // AVG of BIGINT truncated to BIGINT, as the sink's column takes it.
            "SELECT category, CAST(AVG(final) AS BIGINT) FROM (
                 SELECT a.id, a.category, MAX(b.price) AS final FROM auction a JOIN bid b
                 ON a.id = b.auction AND b.date_time BETWEEN a.date_time AND a.expires GROUP BY a.id, a.category)
             GROUP BY category"
                .into(),
        ),
        (
            "q7",
            // Each 10 s window's highest price and window_time (its end - 1 ms), joined back to
            // the bids of the 10 s up to it.
            format!(
                "SELECT b.auction, b.price, b.bidder, b.date_time, b.extra FROM bid b JOIN
                 (SELECT MAX(price) AS maxprice, {ms} / 10000 * 10000 + 9999 AS wt FROM bid GROUP BY {ms} / 10000) w
                 ON b.price = w.maxprice AND CAST(b.date_time AS BIGINT) BETWEEN w.wt - 10000 AND w.wt"
            ),
        ),
        (
            "q8",
            "SELECT DISTINCT p.id, p.name, to_timestamp_millis(CAST(p.date_time AS BIGINT) / 10000 * 10000)
             FROM person p JOIN auction a
             ON p.id = a.seller AND CAST(p.date_time AS BIGINT) / 10000 = CAST(a.date_time AS BIGINT) / 10000"
                .into(),
        ),
        (
            "q11",
            // A new session starts when a bidder's previous bid is 10 s or more before.
            format!(
                "SELECT bidder, COUNT(*), to_timestamp_millis(MIN(t)), to_timestamp_millis(MAX(t) + 10000)
                 FROM (SELECT bidder, t, SUM(starts) OVER (PARTITION BY bidder ORDER BY t ROWS UNBOUNDED PRECEDING) AS session
                       FROM (SELECT bidder, t, CASE WHEN t - LAG(t) OVER (PARTITION BY bidder ORDER BY t) < 10000 THEN 0 ELSE 1 END AS starts
                             FROM (SELECT bidder, {ms} AS t FROM bid)))
                 GROUP BY bidder, session"
            ),
        ),
        (
            "q14",
            // count_char(extra, 'c') as the length lost by removing every 'c'.
            "SELECT auction, bidder, CAST(0.908 * price AS DECIMAL(23, 3)),
                    CASE WHEN date_part('hour', date_time) >= 8 AND date_part('hour', date_time) <= 18 THEN 'dayTime'
                         WHEN date_part('hour', date_time) <= 6 OR date_part('hour', date_time) >= 20 THEN 'nightTime'
                         ELSE 'otherTime' END,
                    date_time, extra, CAST(length(extra) - length(replace(extra, 'c', '')) AS BIGINT)
             FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000"
                .into(),
        ),
        (
            "q15",
            format!(
                "SELECT day, COUNT(*), {bids}, COUNT(DISTINCT bidder), {bidders}, COUNT(DISTINCT auction), {auctions}
                 FROM (SELECT to_char(date_time, '%Y-%m-%d') AS day, * FROM bid) GROUP BY day"
            ),
        ),
        (
            "q16",
            format!(
                "SELECT channel, day, MAX(to_char(date_time, '%H:%M')), COUNT(*), {bids}, COUNT(DISTINCT bidder), {bidders},
                        COUNT(DISTINCT auction), {auctions}
                 FROM (SELECT to_char(date_time, '%Y-%m-%d') AS day, * FROM bid) GROUP BY channel, day"
            ),
        ),
        (
            "q17",
            // AVG of BIGINT truncated to BIGINT, as the sink's column takes it.
            format!(
                "SELECT auction, day, COUNT(*), {bids}, MIN(price), MAX(price), CAST(AVG(price) AS BIGINT), SUM(price)
                 FROM (SELECT to_char(date_time, '%Y-%m-%d') AS day, * FROM bid) GROUP BY auction, day"
            ),
        ),
        (
            "q20",
            // Named as the table's columns: the two sides' date_time and extra would clash.
            "SELECT b.auction, b.bidder, b.price, b.channel, b.url, b.date_time AS bid_datetime, b.extra AS bid_extra,
                    a.item_name, a.description, a.initial_bid, a.reserve, a.date_time AS auction_datetime, a.expires,
                    a.seller, a.category, a.extra AS auction_extra
             FROM bid b JOIN auction a ON b.auction = a.id WHERE a.category = 10"
                .into(),
        ),
        (
            "q21",
            // DataFusion's regexp_match lists the capture groups (from 1).
            "SELECT auction, bidder, price, channel,
                    CASE lower(channel) WHEN 'apple' THEN '0' WHEN 'google' THEN '1' WHEN 'facebook' THEN '2'
                         WHEN 'baidu' THEN '3' ELSE regexp_match(url, '(&|^)channel_id=([^&]*)')[2] END
             FROM bid
             WHERE regexp_match(url, '(&|^)channel_id=([^&]*)')[2] IS NOT NULL
                OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu')"
                .into(),
        ),
        (
            "q22",
            // split_part counts pieces from 1; SPLIT_INDEX from 0.
            "SELECT auction, bidder, price, channel, split_part(url, '/', 4), split_part(url, '/', 5), split_part(url, '/', 6)
             FROM bid"
                .into(),
        ),
    ];
    // The Top-N queries, compared on columns that rows tied in the ORDER BY share: which of two
    // tied rows ranks first depends on their arrival order, which two source subtasks interleave.
    let ranked: Vec<(&str, &str, String)> = vec![
        (
            "q9",
            "id, price, bid_datetime",
            "SELECT id, price, bid_datetime FROM (
                 SELECT a.id, b.price, b.date_time AS bid_datetime,
                        ROW_NUMBER() OVER (PARTITION BY a.id ORDER BY b.price DESC, b.date_time ASC) AS rownum
                 FROM auction a JOIN bid b ON a.id = b.auction AND b.date_time BETWEEN a.date_time AND a.expires)
             WHERE rownum <= 1"
                .into(),
        ),
        (
            "q18",
            "auction, bidder, date_time",
            "SELECT auction, bidder, date_time FROM (
                 SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY date_time DESC) AS rank_number FROM bid)
             WHERE rank_number <= 1"
                .into(),
        ),
        (
            "q19",
            "auction, price, rank_number",
            "SELECT auction, price, CAST(rank_number AS BIGINT) FROM (
                 SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
             WHERE rank_number <= 10"
                .into(),
        ),
    ];
    // q12 windows by processing time: which window a bid lands in depends on when it was read,
    // but every bid is counted once, under its bidder.
    let processing_time = [(
        "q12",
        "(SELECT bidder, SUM(bid_count) FROM nexmark_q12 GROUP BY bidder)".to_string(),
        "SELECT bidder, COUNT(*) FROM bid GROUP BY bidder".to_string(),
    )];
    let checks = checks
        .into_iter()
        .map(|(query, oracle)| (query, format!("nexmark_{query}"), oracle));
    let ranked = ranked
        .into_iter()
        .map(|(query, columns, oracle)| (query, format!("(SELECT {columns} FROM nexmark_{query})"), oracle));
    for (query, table, oracle) in checks.chain(ranked).chain(processing_time) {
        let late = run_query(&session, query).await;
        assert_eq!(late, 0, "{query}: the generator's bids are in order, none is late");
        let n = assert_same_rows(&session, &table, &oracle).await;
        eprintln!("{query}: {n} rows match");
    }
}

/// q10 writes files: its CSV rows and partition directories equal the bids, each row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_q10_files_hold_every_bid_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute("SET 'parallelism' = '2'; SET 'execution.checkpointing.interval' = '200ms';")
        .await
        .expect("settings");
    session.execute(&INPUT.sources_sql()).await.expect("sources");
    let out = dir.path().join("q10");
    let sql = std::fs::read_to_string("sql/nexmark/q10.sql").expect("q10.sql");
    let published = "'path' = 'nexmark-output/q10/bid/'";
    assert_eq!(sql.matches(published).count(), 1, "q10.sql names its output directory once");
    session
        .execute(&sql.replace(published, &format!("'path' = '{}'", out.display())))
        .await
        .expect("q10");
    session.execute("WAIT JOB nexmark_q10").await.expect("wait");
    let mut files = Vec::new();
    let mut dirs = vec![out.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() { dirs.push(path) } else { files.push(path) }
        }
    }
    let mut written = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&out).expect("under the table's directory");
        let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let [dt, hm, name] = parts.as_slice() else {
            panic!("dt=/hm=/file: {relative:?}")
        };
        assert!(name.starts_with("part-nexmark_q10-") && name.ends_with(".csv"), "{name}");
        let dt = dt.strip_prefix("dt=").expect("dt=");
        // ':' is escaped in a path segment, as Flink and Hive escape it.
        let hm = hm.strip_prefix("hm=").expect("hm=").replace("%3A", ":");
        for line in std::fs::read_to_string(file).expect("read").lines() {
            let mut row: Vec<String> = line.split(',').map(str::to_string).collect();
            row.extend([dt.to_string(), hm.clone()]);
            written.push(row);
        }
    }
    written.sort();
    let mut expected = rows(
        &session,
        "SELECT auction, bidder, price, to_char(date_time, '%Y-%m-%d %H:%M:%S%.3f'), extra,
                to_char(date_time, '%Y-%m-%d'), to_char(date_time, '%H:%M')
         FROM bid",
    )
    .await;
    expected.sort();
    assert_eq!(written.len(), expected.len(), "row count");
    assert!(written == expected, "the files' rows differ from the bids");
    eprintln!("q10: {} rows in {} files", written.len(), files.len());
}
