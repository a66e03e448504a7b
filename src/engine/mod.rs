//! The engine (L6): the `Database` (shared state, resume on open, shutdown) and the `Session`
//! every front end drives (`Session::execute(sql) -> Vec<Output>`, one `match` over the statement
//! kinds, each kind's work in `commands/`), the DataFusion table providers batch SQL reads
//! through, the system tables, and Postgres compatibility (types, `pg_catalog` and its functions).

pub mod commands;
pub mod database;
pub mod postgres_types;
pub mod providers;
pub mod resume_guard;
pub mod session;
pub mod system_tables;
