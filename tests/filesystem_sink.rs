//! The `filesystem` table end to end: partition directories, finished files per partition and
//! epoch, Flink's CSV and JSON layouts, and exactly-once across STOP WITH SAVEPOINT and a RESTORE
//! at another parallelism (every row in exactly one finished file, no unfinished file left).

use std::path::{Path, PathBuf};

use weir::Session;

mod common;
use common::rows;

const BIDS: &str = "CREATE SOURCE bids (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, date_time TIMESTAMP(3),
        WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND)
    WITH (connector = 'nexmark', 'nexmark.table' = 'bid', 'max.events' = '30000', 'events.per.second' = '10000', seed = '5'";

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The rows of a JSON table partitioned by `channel`: (auction, price, date_time, channel), sorted;
/// the channel from the file's directory.
fn json_rows(dir: &Path) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for file in files_under(dir) {
        let partition = file
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .expect("partition dir");
        let channel = partition.strip_prefix("channel=").expect("channel=<value>");
        for line in std::fs::read_to_string(&file).expect("read").lines() {
            let row: serde_json::Value = serde_json::from_str(line).expect("a JSON object per line");
            assert!(row.get("channel").is_none(), "partition columns are not in the files: {line}");
            out.push(vec![
                row["auction"].to_string(),
                row["price"].to_string(),
                row["date_time"].as_str().expect("date_time as text").to_string(),
                channel.to_string(),
            ]);
        }
    }
    out.sort();
    out
}

/// The same rows from a stored table, timestamps as the files write them.
async fn stored_rows(session: &Session, table: &str) -> Vec<Vec<String>> {
    let mut out = rows(
        session,
        &format!("SELECT auction, price, to_char(date_time, '%Y-%m-%d %H:%M:%S%.3f'), channel FROM {table}"),
    )
    .await;
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_job_writes_one_finished_file_per_partition() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    let out = dir.path().join("out");
    session
        .execute(&format!(
            "{BIDS}, pace = 'false');
             CREATE TABLE expected (auction BIGINT, price BIGINT, date_time TIMESTAMP(3), channel VARCHAR);
             CREATE JOB e AS INSERT INTO expected SELECT auction, price, date_time, channel FROM bids WHERE price > 1000000;
             WAIT JOB e;
             CREATE TABLE files (auction BIGINT, price BIGINT, date_time TIMESTAMP(3), channel VARCHAR)
               PARTITIONED BY (channel) WITH (connector = 'filesystem', path = '{}', format = 'json');
             CREATE JOB j WITH ('parallelism' = '2') AS INSERT INTO files SELECT auction, price, date_time, channel FROM bids WHERE price > 1000000;
             WAIT JOB j;",
            out.display()
        ))
        .await
        .expect("jobs");
    let expected = stored_rows(&session, "expected").await;
    assert!(expected.len() > 1000, "{} rows", expected.len());
    assert_eq!(json_rows(&out), expected);
    // Without checkpoints the whole input is the final epoch: per partition one file per subtask.
    let files = files_under(&out);
    let partitions: std::collections::BTreeSet<_> = files.iter().filter_map(|f| f.parent()).collect();
    assert!(partitions.len() >= 4, "{partitions:?}");
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            name == "part-j-0-18446744073709551615.json" || name == "part-j-1-18446744073709551615.json",
            "{name}"
        );
    }

    // CSV: no header, partition columns in the path only, a value needing escapes in the path.
    let csv = dir.path().join("csv");
    session
        .execute(&format!(
            "CREATE TABLE csv_files (auction BIGINT, at VARCHAR, price BIGINT) PARTITIONED BY (at)
               WITH (connector = 'filesystem', path = 'file://{}', format = 'csv');
             CREATE JOB c AS INSERT INTO csv_files SELECT auction, '10:00/x', price FROM bids WHERE price > 1000000;
             WAIT JOB c;",
            csv.display()
        ))
        .await
        .expect("csv job");
    let files = files_under(&csv);
    assert_eq!(files, [csv.join("at=10%3A00%2Fx").join("part-c-0-18446744073709551615.csv")]);
    let text = std::fs::read_to_string(&files[0]).expect("read");
    assert_eq!(text.lines().count(), expected.len());
    let first = text.lines().next().expect("a line");
    assert_eq!(first.split(',').count(), 2, "auction and price only, no header: {first}");
    assert!(first.split(',').all(|v| v.parse::<i64>().is_ok()), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_exactly_once_across_a_savepoint_and_a_restore_at_another_parallelism() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    let out = dir.path().join("out");
    session
        .execute(&format!(
            "{BIDS});
             CREATE TABLE expected (auction BIGINT, price BIGINT, date_time TIMESTAMP(3), channel VARCHAR);
             CREATE TABLE files (auction BIGINT, price BIGINT, date_time TIMESTAMP(3), channel VARCHAR)
               PARTITIONED BY (channel) WITH (connector = 'filesystem', path = '{}', format = 'json');
             CREATE JOB j WITH ('parallelism' = '2', 'execution.checkpointing.interval' = '200ms')
               AS INSERT INTO files SELECT auction, price, date_time, channel FROM bids;",
            out.display()
        ))
        .await
        .expect("job");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    session.execute("STOP JOB j WITH SAVEPOINT").await.expect("stop");
    let before = files_under(&out);
    assert!(!before.is_empty(), "checkpoints finished files before the stop");
    session
        .execute("RESTORE JOB j FROM SAVEPOINT sp_j_1 WITH ('parallelism' = '3')")
        .await
        .expect("restore");
    session.execute("WAIT JOB j").await.expect("wait");
    session
        .execute("CREATE JOB e AS INSERT INTO expected SELECT auction, price, date_time, channel FROM bids; WAIT JOB e;")
        .await
        .expect("expected");
    let expected = stored_rows(&session, "expected").await;
    assert_eq!(expected.len(), 30000 * 46 / 50, "the generator's bids");
    assert_eq!(json_rows(&out), expected, "every row in exactly one finished file");
    let files = files_under(&out);
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            name.starts_with("part-j-") && name.ends_with(".json"),
            "only finished files are left: {name}"
        );
    }
    assert!(
        files.iter().any(|f| f.to_string_lossy().contains("part-j-2-")),
        "subtask 2 of the restored job wrote"
    );
    assert!(before.iter().all(|f| files.contains(f)), "the savepoint's files stay");
}

/// Parquet: the rows of each finished file read back with a parquet reader, typed (timestamps as
/// TIMESTAMP(MILLIS), not text), every row once across the epochs' files, snappy-compressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_files_hold_every_row_once_typed() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMillisecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    let out = dir.path().join("out");
    session
        .execute(&format!(
            "{BIDS});
             CREATE TABLE expected (auction BIGINT, price BIGINT, date_time TIMESTAMP(3), channel VARCHAR);
             CREATE JOB e AS INSERT INTO expected SELECT auction, price, date_time, channel FROM bids;
             WAIT JOB e;
             CREATE TABLE files (auction BIGINT, price BIGINT, date_time TIMESTAMP(3), channel VARCHAR)
               PARTITIONED BY (channel) WITH (connector = 'filesystem', path = '{}', format = 'parquet');
             CREATE JOB j WITH ('parallelism' = '2', 'execution.checkpointing.interval' = '300ms')
               AS INSERT INTO files SELECT auction, price, date_time, channel FROM bids;
             WAIT JOB j;",
            out.display()
        ))
        .await
        .expect("jobs");
    let expected = stored_rows(&session, "expected").await;
    let files = files_under(&out);
    let epochs: std::collections::BTreeSet<_> = files
        .iter()
        .filter_map(|f| f.file_name()?.to_str()?.rsplit('-').next().map(str::to_string))
        .collect();
    assert!(epochs.len() > 1, "checkpoints finished files of several epochs: {files:?}");
    let mut got = Vec::new();
    for file in &files {
        assert_eq!(file.extension().and_then(|e| e.to_str()), Some("parquet"), "{}", file.display());
        let channel = file
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("channel="))
            .expect("channel=<value>")
            .to_string();
        let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).expect("open")).expect("a parquet file");
        let compression = builder.metadata().row_group(0).column(0).compression();
        assert_eq!(compression, parquet::basic::Compression::SNAPPY);
        for batch in builder.build().expect("reader") {
            let batch = batch.expect("batch");
            let names: Vec<_> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            assert_eq!(names, ["auction", "price", "date_time"], "partition columns are not in the files");
            assert_eq!(batch.column(2).data_type(), &DataType::Timestamp(TimeUnit::Millisecond, None));
            let (auction, price) = (
                batch.column(0).as_primitive::<Int64Type>(),
                batch.column(1).as_primitive::<Int64Type>(),
            );
            let times = batch.column(2).as_primitive::<TimestampMillisecondType>();
            for row in 0..batch.num_rows() {
                let time = times.value_as_datetime(row).expect("a time");
                got.push(vec![
                    auction.value(row).to_string(),
                    price.value(row).to_string(),
                    time.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                    channel.clone(),
                ]);
            }
        }
    }
    got.sort();
    assert_eq!(got.len(), 30000 * 46 / 50, "the generator's bids");
    assert_eq!(got, expected, "every row in exactly one finished file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_filesystem_table_cannot_take_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session.execute(&format!("{BIDS})")).await.expect("source");
    let path = dir.path().join("out");
    let error = |sql: String| {
        let session = &session;
        async move { session.execute(&sql).await.expect_err(&sql).to_string() }
    };
    let table = |extra: &str, with: &str| {
        format!(
            "CREATE TABLE t (auction BIGINT, n BIGINT{extra}) WITH (connector = 'filesystem', path = '{}'{with})",
            path.display()
        )
    };
    assert!(
        error(table(", PRIMARY KEY (auction)", ", format = 'csv'"))
            .await
            .contains("append-only")
    );
    assert!(error(table("", "")).await.contains("needs a 'format'"));
    assert!(
        error(table("", ", format = 'avro'"))
            .await
            .contains("format 'avro' is not supported; use 'csv', 'json' or 'parquet'")
    );
    assert!(
        error(table("", ", format = 'csv', 'sink.rolling-policy.file-size' = '1MB'"))
            .await
            .contains("unknown option")
    );
    assert!(
        error(table("", ", format = 'csv', 'sink.partition-commit.policy.kind' = 'success-file'"))
            .await
            .contains("committed at each checkpoint")
    );
    assert!(
        error("CREATE TABLE s (a BIGINT) PARTITIONED BY (a)".into())
            .await
            .contains("PARTITIONED BY is for 'filesystem' tables")
    );
    assert!(
        error(format!(
            "CREATE TABLE t (a BIGINT) PARTITIONED BY (b) WITH (connector = 'filesystem', path = '{}', format = 'csv')",
            path.display()
        ))
        .await
        .contains("'b' is not a column")
    );
    assert!(
        error("CREATE TABLE t (a BIGINT) WITH (connector = 'filesystem', path = '/etc/weir-out', format = 'csv')".into())
            .await
            .contains("/etc/weir-out")
    );
    session.execute(&table("", ", format = 'csv'")).await.expect("table");
    assert!(
        error("CREATE JOB u AS INSERT INTO t SELECT auction, COUNT(*) FROM bids GROUP BY auction".into())
            .await
            .contains("append-only 'filesystem' table 't' cannot take")
    );
}
