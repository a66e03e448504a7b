//! Weir: a streaming SQL database. See DESIGN.md for the map; `Session::execute` is the way in.

pub mod bench;
pub mod catalog;
pub mod checkpoint;
pub mod connectors;
pub mod data_dir;
pub mod engine;
pub mod error;
pub mod format;
pub mod fs;
pub mod graph;
pub mod http;
pub mod job;
pub mod message;
pub mod operators;
pub mod partition;
pub mod pgwire;
pub mod planner;
pub mod repl;
pub mod runtime;
pub mod settings;
pub mod state;

pub use engine::database::Database;
pub use engine::session::{Output, Session};
pub use error::{Error, Result};

/// Every binary linking Weir (the server, tests, benchmarks) allocates through mimalloc: the
/// aggregates allocate per group, and glibc's malloc was the largest item of q5's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
