//! Rescaling generator sources. Subtask i of p reads the sequence numbers n ≡ i (mod p), so a
//! checkpoint holds one position per old subtask. A subtask at a new parallelism starts at the
//! smallest old position and skips every number an old subtask already read (n below the position
//! of old subtask n mod p), until it passes the largest old position.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runtime::SourcePosition;

/// Sequence numbers that were read before a rescale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadBefore {
    pub parallelism: u64,
    pub positions: Vec<u64>,
}

impl ReadBefore {
    pub fn contains(&self, n: u64) -> bool {
        self.positions.get((n % self.parallelism) as usize).is_some_and(|p| n < *p)
    }

    /// No number at or beyond this was read before the rescale.
    pub fn horizon(&self) -> u64 {
        self.positions.iter().copied().max().unwrap_or(0)
    }
}

/// A generator's position: the next number, and what was read before a rescale (if still relevant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorPosition {
    pub next: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_before: Option<ReadBefore>,
}

impl GeneratorPosition {
    pub fn encode(&self) -> SourcePosition {
        match &self.read_before {
            None => SourcePosition::from(self.next),
            Some(_) => serde_json::to_value(self).unwrap_or(SourcePosition::from(self.next)),
        }
    }

    pub fn decode(position: &SourcePosition) -> Result<Self> {
        match position.as_u64() {
            Some(next) => Ok(GeneratorPosition { next, read_before: None }),
            None => {
                serde_json::from_value(position.clone()).map_err(|e| Error::internal(format!("bad generator position {position}: {e}")))
            }
        }
    }

    /// The position for a subtask at a new parallelism, from the positions of all old subtasks.
    pub fn rescaled(old: &[SourcePosition]) -> Result<SourcePosition> {
        let decoded = old.iter().map(GeneratorPosition::decode).collect::<Result<Vec<_>>>()?;
        if decoded.iter().any(|p| p.read_before.as_ref().is_some_and(|r| p.next < r.horizon())) {
            return Err(Error::unsupported(
                "this source was rescaled recently; restore it once at its current parallelism before rescaling again",
            ));
        }
        let positions: Vec<u64> = decoded.iter().map(|p| p.next).collect();
        let next = positions.iter().copied().min().unwrap_or(0);
        Ok(GeneratorPosition {
            next,
            read_before: Some(ReadBefore {
                parallelism: positions.len() as u64,
                positions,
            }),
        }
        .encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_exactly_what_old_subtasks_read() {
        // Two old subtasks had read 0,2,4 (next 6) and 1,3 (next 5).
        let before = ReadBefore {
            parallelism: 2,
            positions: vec![6, 5],
        };
        let read: Vec<u64> = (0..10).filter(|n| before.contains(*n)).collect();
        assert_eq!(read, vec![0, 1, 2, 3, 4]);
        assert_eq!(before.horizon(), 6);
        let encoded = GeneratorPosition::rescaled(&[SourcePosition::from(6u64), SourcePosition::from(5u64)]).unwrap();
        let decoded = GeneratorPosition::decode(&encoded).unwrap();
        assert_eq!(decoded.next, 5);
        assert_eq!(decoded.read_before, Some(before));
    }
}
