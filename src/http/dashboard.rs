//! The web dashboard at `/`: one page with its script inline, built into the binary (no build step
//! at run time). It polls the JSON API every few seconds: the job list, the selected job's graph
//! with per-operator rates, backpressure and watermarks (rates from the change between polls),
//! its checkpoint history chart (duration; full vs uploaded bytes) and its savepoints.

pub const PAGE: &str = include_str!("dashboard.html");
