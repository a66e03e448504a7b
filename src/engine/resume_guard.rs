//! Jobs that take the process down while they resume are not resumed forever. Before a job resumes
//! at start, a marker in its job directory records the checkpoint it resumes from and how many
//! starts in a row resumed it from there. A clean exit removes the markers; a start that finds one
//! whose checkpoint is still the latest knows the previous process died before the job completed a
//! checkpoint (out of memory, a crash). After [`MAX_STARTS_WITHOUT_PROGRESS`] such starts the job
//! is marked FAILED instead, and the server comes up without it.

use serde::{Deserialize, Serialize};

use crate::checkpoint::storage::CheckpointStorage;
use crate::data_dir::JobDir;
use crate::error::Result;
use crate::fs::write_atomically;

/// Starts in a row that resumed a job from the same checkpoint and then died.
pub const MAX_STARTS_WITHOUT_PROGRESS: u32 = 2;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct ResumeMarker {
    /// The latest complete checkpoint when the job resumed (`None`: it had none).
    checkpoint: Option<u64>,
    /// Starts in a row that resumed from it.
    starts: u32,
}

/// Records that `job` resumes now; `Err(cause)` when it should not be resumed again.
pub fn before_resume(job: &JobDir, storage: &CheckpointStorage) -> Result<std::result::Result<(), String>> {
    // The manifest only: checking the files is the restore's work, not worth doing twice.
    let latest = storage.newest_complete_id()?;
    let marker = job.resume_marker();
    let previous: Option<ResumeMarker> = std::fs::read(&marker).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let died = previous.filter(|p| p.checkpoint == latest).map_or(0, |p| p.starts);
    if died >= MAX_STARTS_WITHOUT_PROGRESS {
        return Ok(Err(format!(
            "Weir ended abnormally {died} times in a row while this job was resuming, before it completed a checkpoint \
             (out of memory? see the log); it is not resumed again. Fix its settings and RESTORE JOB it, or DROP JOB it"
        )));
    }
    let record = ResumeMarker {
        checkpoint: latest,
        starts: died + 1,
    };
    write_atomically(&marker, &serde_json::to_vec(&record)?)?;
    Ok(Ok(()))
}

/// A clean exit: the jobs did not take the process down.
pub fn clean_exit(job: &JobDir) {
    let _ = std::fs::remove_file(job.resume_marker());
}
