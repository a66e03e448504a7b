//! Job settings: the session's `SET` values overlaid with the job's `WITH (...)`, validated once.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::state::StateBackendKind;

#[derive(Debug, Clone)]
pub struct JobSettings {
    pub parallelism: usize,
    pub state_backend: StateBackendKind,
    /// Groups an aggregate keeps in memory before spilling them to the state backend.
    pub state_cache_entries: usize,
}

pub const KNOWN_KEYS: [&str; 3] = ["parallelism", "state.backend.type", "state.cache.max-entries"];

impl JobSettings {
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        let mut settings = JobSettings {
            parallelism: 1,
            state_backend: StateBackendKind::RocksDb,
            state_cache_entries: 100_000,
        };
        let positive = |key: &str, value: &str| -> Result<usize> {
            value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::invalid(format!("'{key}' must be a positive integer, not '{value}'")))
        };
        for (key, value) in options {
            match key.as_str() {
                "parallelism" | "parallelism.default" => {
                    settings.parallelism = positive(key, value)?;
                    if settings.parallelism > crate::graph::MAX_PARALLELISM {
                        return Err(Error::invalid(format!(
                            "'parallelism' is at most {}",
                            crate::graph::MAX_PARALLELISM
                        )));
                    }
                }
                "state.backend.type" | "state.backend" => settings.state_backend = StateBackendKind::parse(value)?,
                "state.cache.max-entries" => settings.state_cache_entries = positive(key, value)?,
                other => {
                    return Err(Error::invalid(format!(
                        "unknown setting '{other}'; known settings: {}",
                        KNOWN_KEYS.join(", ")
                    )));
                }
            }
        }
        Ok(settings)
    }
}
