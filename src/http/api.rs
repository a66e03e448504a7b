//! The JSON API (`/api/v1/...`), in the spirit of Flink's REST API. Lists are the rows of the SQL
//! command of the same name, as objects keyed by its column names (SHOW JOBS, SHOW CHECKPOINTS,
//! SHOW SAVEPOINTS), so the API and SQL never disagree. Triggering a savepoint and stopping a job
//! run the commands' own code through a `Session`, with the same checks as in SQL.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::json::WriterBuilder;
use datafusion::arrow::json::writer::JsonArray;
use serde_json::{Value, json};

use crate::checkpoint::history::CheckpointStatus;
use crate::engine::database::Database;
use crate::engine::session::{Output, Session};
use crate::error::{Error, Result};
use crate::planner::statement::ShowTarget;
use crate::settings::CheckpointMode;

/// A command's rows as JSON objects, column name → value (NULL as null).
fn rows(output: Output) -> Result<Vec<Value>> {
    let Output::Rows { batches, .. } = output else {
        return Ok(Vec::new());
    };
    let batches: Vec<_> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(Vec::new());
    writer.write_batches(&batches)?;
    writer.finish()?;
    match serde_json::from_slice(&writer.into_inner())? {
        Value::Array(rows) => Ok(rows),
        other => Err(Error::internal(format!("rows written as JSON are not an array: {other}"))),
    }
}

/// `/api/v1/jobs`: SHOW JOBS.
pub fn jobs(db: &Arc<Database>) -> Result<Value> {
    Ok(json!({ "jobs": rows(Session::new(Arc::clone(db)).show(ShowTarget::Jobs)?)? }))
}

/// `/api/v1/jobs/{name}`: the job's SHOW JOBS row, and its graph: one vertex per operator with
/// its figures per subtask while the job runs, and the edges between them.
pub fn job(db: &Arc<Database>, name: &str) -> Result<Value> {
    let session = Session::new(Arc::clone(db));
    let row = rows(session.show(ShowTarget::Jobs)?)?
        .into_iter()
        .find(|row| row.get("name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| Error::not_found("job", name))?;
    let Some(live) = db.jobs().get(name)? else {
        return Ok(json!({ "job": row, "vertices": [], "edges": [] }));
    };
    let tasks = live.metrics.tasks();
    let vertices: Vec<Value> = live
        .graph
        .operators
        .iter()
        .enumerate()
        .map(|(index, op)| {
            let subtasks: Vec<Value> = tasks
                .iter()
                .filter(|t| t.operators.contains(&index))
                .map(|t| {
                    json!({
                        "subtask": t.subtask,
                        "task": t.name,
                        "records_in": t.records_in(),
                        "records_out": t.records_out(),
                        "late_records_dropped": t.late_rows(),
                        "state_bytes": t.state_bytes(),
                        "source_backlog": t.source_backlog(),
                        "watermark": t.watermark_millis(),
                        "backpressured_ms": t.backpressured().as_millis() as u64,
                        "uptime_ms": t.uptime().as_millis() as u64,
                    })
                })
                .collect();
            json!({
                "id": index,
                "uid": op.uid,
                "kind": op.spec.kind_name(),
                "description": op.spec.describe(),
                "parallelism": op.parallelism,
                "subtasks": subtasks,
            })
        })
        .collect();
    let edges: Vec<Value> = live
        .graph
        .edges
        .iter()
        .map(|edge| {
            json!({
                "from": edge.from,
                "to": edge.to,
                "input": edge.input,
                "ship": match &edge.kind {
                    crate::graph::EdgeKind::Forward => "FORWARD",
                    crate::graph::EdgeKind::Hash(_) => "HASH",
                },
            })
        })
        .collect();
    Ok(json!({ "job": row, "vertices": vertices, "edges": edges }))
}

/// `/api/v1/jobs/{name}/checkpoints`: SHOW CHECKPOINTS, the counts by status and the job's
/// checkpoint configuration (Flink's `/jobs/:id/checkpoints` and `/checkpoints/config`).
pub fn checkpoints(db: &Arc<Database>, name: &str) -> Result<Value> {
    let history = rows(Session::new(Arc::clone(db)).show_checkpoints(name)?)?;
    let count = |status: CheckpointStatus| {
        history
            .iter()
            .filter(|r| r.get("status").and_then(Value::as_str) == Some(status.name()))
            .count()
    };
    let counts = json!({
        "completed": count(CheckpointStatus::Completed),
        "failed": count(CheckpointStatus::Failed),
        "in_progress": count(CheckpointStatus::InProgress),
    });
    let latest = history
        .iter()
        .rev()
        .find(|r| r.get("status").and_then(Value::as_str) == Some(CheckpointStatus::Completed.name()))
        .cloned();
    let configuration = match db.jobs().get(name)? {
        Some(live) => match &live.settings.checkpoints {
            Some(c) => json!({
                "enabled": true,
                "interval_ms": c.interval.as_millis() as u64,
                "mode": match c.mode {
                    CheckpointMode::ExactlyOnce => "EXACTLY_ONCE",
                    CheckpointMode::AtLeastOnce => "AT_LEAST_ONCE",
                },
                "timeout_ms": c.timeout.as_millis() as u64,
                "min_pause_ms": c.min_pause.as_millis() as u64,
                "max_concurrent": c.max_concurrent,
                "tolerable_failed": c.tolerable_failed,
                "retained": c.num_retained,
                "incremental": c.incremental,
                "unaligned": c.unaligned,
                "directory": c.dir.as_ref().map(|d| d.to_string()),
            }),
            None => json!({ "enabled": false }),
        },
        None => Value::Null,
    };
    Ok(json!({ "job": name, "counts": counts, "latest": latest, "history": history, "configuration": configuration }))
}

/// `/api/v1/savepoints`: SHOW SAVEPOINTS.
pub fn savepoints(db: &Arc<Database>) -> Result<Value> {
    Ok(json!({ "savepoints": rows(Session::new(Arc::clone(db)).show_savepoints()?)? }))
}

/// The request's JSON object (an empty body is `{}`).
fn body_object(body: &[u8]) -> Result<serde_json::Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Error::invalid("the request body must be a JSON object")),
        Err(e) => Err(Error::invalid(format!("the request body is not JSON: {e}"))),
    }
}

/// POST `/api/v1/jobs/{name}/savepoints` (`{"directory": ...}` optional): SAVEPOINT JOB.
pub async fn trigger_savepoint(db: &Arc<Database>, name: &str, body: &[u8]) -> Result<Value> {
    let request = body_object(body)?;
    let directory = match request.get("directory") {
        None | Some(Value::Null) => None,
        Some(Value::String(dir)) => Some(dir.clone()),
        Some(_) => return Err(Error::invalid("'directory' must be a string")),
    };
    let output = Session::new(Arc::clone(db))
        .savepoint_job(name, directory, &BTreeMap::new())
        .await?;
    Ok(json!({ "savepoint": rows(output)?.into_iter().next() }))
}

/// POST `/api/v1/jobs/{name}/stop` (`{"savepoint": true}` optional): STOP JOB [WITH SAVEPOINT].
pub async fn stop_job(db: &Arc<Database>, name: &str, body: &[u8]) -> Result<Value> {
    let request = body_object(body)?;
    let with_savepoint = match request.get("savepoint") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Error::invalid("'savepoint' must be true or false")),
    };
    let output = Session::new(Arc::clone(db)).stop_job(name, with_savepoint).await?;
    Ok(json!({ "job": name, "stopped": true, "savepoint": rows(output)?.into_iter().next() }))
}
