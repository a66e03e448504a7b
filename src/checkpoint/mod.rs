//! Checkpoints (DESIGN §5), the barrier control plane from top to bottom: the `coordinator` loop
//! triggers barriers and collects acks (`pending`), `complete` uploads a checkpoint's files and
//! writes `_metadata` last, `commit` makes the sinks' staged rows visible (phase two), `history`
//! is what SHOW CHECKPOINTS shows; `storage` and `manifest` are the files (`remote`: on S3), `savepoint` the exports.

pub mod commit;
pub mod complete;
pub mod coordinator;
pub mod history;
pub mod manifest;
pub mod pending;
pub mod remote;
pub mod restore;
pub mod savepoint;
pub mod storage;
