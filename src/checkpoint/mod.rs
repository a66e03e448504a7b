//! Checkpoints (DESIGN §5): the storage layout and manifest, and the coordinator that triggers
//! barriers, collects the tasks' acks, uploads their snapshots, writes `_metadata` last and then
//! commits the sinks' staged rows.

pub mod coordinator;
pub mod manifest;
pub mod savepoint;
pub mod storage;
