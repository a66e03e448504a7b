//! Weir: a streaming SQL database. See DESIGN.md for the map; `Session::execute` is the way in.

pub mod bench;
pub mod catalog;
pub mod checkpoint;
pub mod connectors;
pub mod database;
pub mod error;
pub mod format;
pub mod graph;
pub mod job;
pub mod lifecycle;
pub mod message;
pub mod operators;
pub mod pgserver;
pub mod planner;
pub mod repl;
pub mod runtime;
pub mod session;
pub mod state;
pub mod system_tables;

pub use database::Database;
pub use error::{Error, Result};
pub use session::{Output, Session};

/// Every binary linking Weir (the server, tests, benchmarks) allocates through mimalloc: the
/// aggregates allocate per group, and glibc's malloc was the largest item of q5's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
