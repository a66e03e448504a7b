//! Checkpoint files on disk: incremental uploads reuse shared SST files, unreferenced files go,
//! aborted checkpoints leave nothing, full checkpoints copy everything, failed uploads are
//! tolerated up to the configured count.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use weir::Session;
use weir::checkpoint::manifest::CheckpointManifest;
use weir::checkpoint::storage::CheckpointStorage;

mod common;
use common::rows;

/// Waits until the job has `n` completed checkpoints; returns the statuses seen, in id order.
async fn wait_for_checkpoints(session: &Session, job: &str, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let statuses: Vec<String> = rows(session, &format!("SHOW CHECKPOINTS FOR JOB {job}"))
            .await
            .into_iter()
            .map(|r| r[1].clone())
            .collect();
        if statuses.iter().filter(|s| *s == "COMPLETED").count() >= n {
            return statuses;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "job {job} did not complete {n} checkpoints: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Full 4,096-row batches (a 1 s linger), as datagen cut them before `batch.linger` existed: with
// 100 ms linger batches every checkpoint changes keys and spills, and universal compaction then
// often rewrites every SST between the last two checkpoints, which the reuse check samples.
const SETUP: &str = "
    CREATE SOURCE s (k BIGINT, v BIGINT) WITH (connector = 'datagen', 'rows-per-second' = '20000',
        'fields.k.min' = '0', 'fields.k.max' = '20000', seed = '1', 'batch.linger' = '1s');
    CREATE TABLE t (k BIGINT, n BIGINT, total BIGINT, PRIMARY KEY (k));";

fn shared_files(manifest: &CheckpointManifest) -> BTreeSet<String> {
    manifest
        .files()
        .filter(|f| f.path.starts_with("shared/"))
        .map(|f| f.path.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_checkpoints_reuse_shared_files_and_clean_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session.execute(SETUP).await.expect("setup");
    session
        .execute(
            "CREATE JOB j WITH ('execution.checkpointing.interval' = '100ms', 'execution.checkpointing.num-retained' = '2',
               'execution.checkpointing.externalized-checkpoint-retention' = 'RETAIN_ON_CANCELLATION',
               'state.cache.max-entries' = '1000')
             AS INSERT INTO t SELECT k, COUNT(*), SUM(v) FROM s GROUP BY k",
        )
        .await
        .expect("job");
    wait_for_checkpoints(&session, "j", 6).await;
    session.execute("DROP JOB j").await.expect("drop");

    let storage = CheckpointStorage::local(dir.path().join("checkpoints").join("j"));
    let ids = storage.checkpoint_ids().expect("ids");
    // num-retained = 2: only the two newest complete checkpoints are left, nothing aborted.
    assert_eq!(ids.len(), 2, "checkpoint directories left: {ids:?}");
    let newest = storage.read_manifest(ids[0]).expect("newest manifest");
    let previous = storage.read_manifest(ids[1]).expect("previous manifest");
    let (new_shared, old_shared) = (shared_files(&newest), shared_files(&previous));
    assert!(!new_shared.is_empty(), "incremental checkpoints keep SST files in shared/");
    assert!(
        new_shared.intersection(&old_shared).next().is_some(),
        "checkpoint {} re-uploaded every SST of {}",
        ids[0],
        ids[1]
    );
    assert!(
        newest.bytes_uploaded < newest.full_size,
        "uploaded {} of {} bytes",
        newest.bytes_uploaded,
        newest.full_size
    );
    // Every file in shared/ is referenced by a retained checkpoint.
    let on_disk: BTreeSet<String> = std::fs::read_dir(storage.root().join("shared"))
        .expect("shared dir")
        .map(|e| format!("shared/{}", e.expect("entry").file_name().to_string_lossy()))
        .collect();
    let referenced: BTreeSet<String> = new_shared.union(&old_shared).cloned().collect();
    assert_eq!(on_disk, referenced);
    // The files are what the manifest says.
    for file in newest.files() {
        storage.verified(file).expect("checksum");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_checkpoints_copy_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session.execute(SETUP).await.expect("setup");
    session
        .execute(
            "CREATE JOB j WITH ('execution.checkpointing.interval' = '100ms', 'state.backend.incremental' = 'false',
               'execution.checkpointing.externalized-checkpoint-retention' = 'RETAIN_ON_CANCELLATION')
             AS INSERT INTO t SELECT k, COUNT(*), SUM(v) FROM s GROUP BY k",
        )
        .await
        .expect("job");
    wait_for_checkpoints(&session, "j", 3).await;
    session.execute("DROP JOB j").await.expect("drop");
    let storage = CheckpointStorage::local(dir.path().join("checkpoints").join("j"));
    let ids = storage.checkpoint_ids().expect("ids");
    assert_eq!(ids.len(), 1, "num-retained defaults to 1: {ids:?}");
    let manifest = storage.read_manifest(ids[0]).expect("manifest");
    assert!(shared_files(&manifest).is_empty());
    assert_eq!(manifest.bytes_uploaded, manifest.full_size);
    assert!(!manifest.incremental);
}

/// The rows a sink staged for a checkpoint that failed are committed with the next one (as Flink's
/// two-phase-commit sinks commit every pending transaction up to the completed checkpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_failed_checkpoints_are_committed_with_the_next() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute(
            "CREATE SOURCE seq (id BIGINT) WITH (connector = 'datagen', 'number-of-rows' = '30000',
                 'rows-per-second' = '30000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
                 'fields.id.end' = '30000');
             CREATE TABLE ids (id BIGINT);
             CREATE JOB copy WITH ('execution.checkpointing.interval' = '100ms', 'debug.checkpoint.fail-uploads' = '3',
                 'execution.checkpointing.tolerable-failed-checkpoints' = '3')
             AS INSERT INTO ids SELECT id FROM seq;
             WAIT JOB copy",
        )
        .await
        .expect("job");
    let statuses: Vec<String> = rows(&session, "SHOW CHECKPOINTS FOR JOB copy")
        .await
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(statuses.iter().filter(|s| *s == "FAILED").count(), 3, "{statuses:?}");
    assert!(statuses.iter().any(|s| s == "COMPLETED"), "{statuses:?}");
    assert_eq!(
        rows(&session, "SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM ids").await,
        vec![vec!["30000", "30000", "1", "30000"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_uploads_are_tolerated_then_fail_the_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session.execute(SETUP).await.expect("setup");
    session
        .execute(
            "CREATE JOB tolerant WITH ('execution.checkpointing.interval' = '50ms', 'debug.checkpoint.fail-uploads' = '2',
               'execution.checkpointing.tolerable-failed-checkpoints' = '2')
             AS INSERT INTO t SELECT k, COUNT(*), SUM(v) FROM s GROUP BY k",
        )
        .await
        .expect("job");
    let statuses = wait_for_checkpoints(&session, "tolerant", 1).await;
    assert_eq!(&statuses[..2], &["FAILED".to_string(), "FAILED".to_string()], "{statuses:?}");
    let storage = CheckpointStorage::local(dir.path().join("checkpoints").join("tolerant"));
    for id in [1, 2] {
        assert!(!storage.checkpoint_dir(id).exists(), "files of failed checkpoint {id} remain");
    }
    assert_eq!(
        rows(&session, "SELECT status, restarts FROM weir_jobs WHERE name = 'tolerant'").await,
        vec![vec!["RUNNING", "0"]]
    );
    session.execute("DROP JOB tolerant").await.expect("drop");

    // Intolerant: the first failed upload fails the job over; with no restarts it is FAILED.
    session
        .execute(
            "CREATE JOB strict WITH ('execution.checkpointing.interval' = '50ms', 'debug.checkpoint.fail-uploads' = '1',
               'restart-strategy.type' = 'none')
             AS INSERT INTO t SELECT k, COUNT(*), SUM(v) FROM s GROUP BY k",
        )
        .await
        .expect("job");
    let error = session.execute("WAIT JOB strict").await.expect_err("the job fails").to_string();
    assert!(error.contains("injected checkpoint upload failure"), "{error}");
}
