//! DataFusion `TableProvider`s: sources (bounded ones can be read by batch SQL), result tables
//! stored in Weir, and the system tables.

pub mod source_table;
pub mod stored_table;
