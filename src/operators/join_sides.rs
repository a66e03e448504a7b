//! `JoinSides`: what the joins driven by event time (`IntervalJoin`, `WindowJoin`) share. Both keep
//! each side's rows per join key ordered by a time (the row's event time, or its window's end) in a
//! `KeyedCache` over one backend, emit joined rows as one batch per input batch or watermark, and
//! snapshot both sides with the watermark they reached. Each adds its own index of when keys are
//! due, rebuilt on restore from what `restore` returns.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::RowConverter;

use crate::error::{Error, Result};
use crate::graph::{JoinKind, JoinSpec, PhysicalExprRef};
use crate::message::{EventTime, Message};
use crate::operators::grouping::GroupKey;
use crate::operators::join::{Emitted, JoinedRows, join_key_converter, snapshot_sides};
use crate::operators::keyed_cache::KeyedCache;
use crate::operators::{WatermarkMeta, decode_meta, encode_meta};
use crate::runtime::OperatorSnapshot;
use crate::state::StateBackend;

/// One side's rows under one join key: by time, then row-encoded, with what the join keeps per row.
pub type TimedRows<V> = BTreeMap<(EventTime, Box<[u8]>), V>;

pub struct JoinSides<V> {
    pub kind: JoinKind,
    /// Each side's join key expressions.
    pub keys: [Vec<PhysicalExprRef>; 2],
    pub key_rows: RowConverter,
    pub joined: JoinedRows,
    /// The ON condition's rest, over both sides' columns.
    pub filter: Option<PhysicalExprRef>,
    sides: [KeyedCache<TimedRows<V>>; 2],
    pub backend: Box<dyn StateBackend>,
    /// The last watermark passed on.
    pub watermark: EventTime,
    decode: fn(&[u8]) -> Result<TimedRows<V>>,
}

impl<V: Clone + Send + Sync + 'static> JoinSides<V> {
    /// `encode` / `decode`: a key's rows of one side as stored in the backend.
    pub fn new(
        spec: &JoinSpec,
        inputs: [SchemaRef; 2],
        output_schema: SchemaRef,
        backend: Box<dyn StateBackend>,
        cache_limit: usize,
        encode: fn(&TimedRows<V>) -> Vec<u8>,
        decode: fn(&[u8]) -> Result<TimedRows<V>>,
    ) -> Result<Self> {
        let encode = Arc::new(move |rows: &TimedRows<V>| (!rows.is_empty()).then(|| encode(rows)));
        Ok(JoinSides {
            kind: spec.kind,
            keys: spec.keys.clone(),
            key_rows: join_key_converter(spec, &inputs)?,
            joined: JoinedRows::new(&inputs, output_schema)?,
            filter: spec.filter.clone(),
            sides: [KeyedCache::new(cache_limit, encode.clone()), KeyedCache::new(cache_limit, encode)],
            backend,
            watermark: EventTime::MIN,
            decode,
        })
    }

    /// The rows of `side` under `state_key`, to change. `stored`: whether the backend may hold
    /// rows of the key. The operator's index of due keys lists every key with rows, so a key it
    /// lacks is new and the backend is not read for it.
    pub fn rows_mut(&mut self, side: usize, state_key: &GroupKey, stored: bool) -> Result<&mut TimedRows<V>> {
        let (backend, decode) = (&self.backend, self.decode);
        self.sides[side].changing_stored(
            state_key,
            || match stored {
                true => backend.get(state_key)?.map(|bytes| decode(&bytes)).transpose(),
                false => Ok(None),
            },
            TimedRows::new,
        )
    }

    /// The rows of `side` under `state_key`, to read: from the cache, else (if the backend may
    /// hold them, as for `rows_mut`) from the backend without caching them.
    pub fn rows(&self, side: usize, state_key: &GroupKey, stored: bool) -> Result<Cow<'_, TimedRows<V>>> {
        if let Some(rows) = self.sides[side].get(state_key) {
            return Ok(Cow::Borrowed(rows));
        }
        Ok(Cow::Owned(
            match stored.then(|| self.backend.get(state_key)).transpose()?.flatten() {
                Some(bytes) => (self.decode)(&bytes)?,
                None => TimedRows::new(),
            },
        ))
    }

    /// The operator emptied the rows of `side` under `state_key`: their cache entry goes unless
    /// the backend holds a copy for the next flush to delete. Rows that live shorter than a
    /// checkpoint interval (most of an interval join's) never reach the backend.
    pub fn forget_emptied(&mut self, side: usize, state_key: &GroupKey) {
        if self.sides[side].get(state_key).is_some_and(|rows| rows.is_empty()) {
            self.sides[side].forget_unstored(state_key);
        }
    }

    /// Sends `emitted` on as one batch, and spills the caches if they grew past their limit.
    pub fn emit(&mut self, emitted: &[Emitted], out: &mut Vec<Message>) -> Result<()> {
        if !emitted.is_empty() {
            out.push(Message::Data(self.joined.build(emitted)?));
        }
        for side in &mut self.sides {
            side.spill_if_full(self.backend.as_mut())?;
        }
        Ok(())
    }

    /// Takes `watermark` if it is newer than the last one.
    pub fn advance(&mut self, watermark: EventTime) -> bool {
        let newer = watermark > self.watermark;
        if newer {
            self.watermark = watermark;
        }
        newer
    }

    pub fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        let meta = encode_meta(&WatermarkMeta { watermark: self.watermark })?;
        snapshot_sides(&mut self.sides, self.backend.as_mut(), dir, meta)
    }

    /// Takes back the watermark; every stored row is in the restored backend. Returns each stored
    /// state key with its side and earliest time, for the operator to rebuild its index of due keys.
    pub fn restore(&mut self, meta: &serde_json::Value, what: &str) -> Result<Vec<(GroupKey, usize, EventTime)>> {
        self.watermark = decode_meta::<WatermarkMeta>(meta, what)?.watermark;
        let mut stored = Vec::new();
        for (state_key, value) in self.backend.scan(&[], &[0xff; 16])? {
            let side = side_of(&state_key)?;
            if let Some((t, _)) = (self.decode)(&value)?.keys().next() {
                stored.push((state_key.into_boxed_slice(), side, *t));
            }
        }
        Ok(stored)
    }
}

/// The side a join state key belongs to (its last byte, see `side_state_key`).
pub fn side_of(state_key: &[u8]) -> Result<usize> {
    match state_key.last() {
        Some(side @ (0 | 1)) => Ok(*side as usize),
        _ => Err(Error::internal("a join state key without its side")),
    }
}

/// The side of a two-input operator's input.
pub fn input_side(input: usize) -> Result<usize> {
    match input {
        0 | 1 => Ok(input),
        other => Err(Error::internal(format!("a join has no input {other}"))),
    }
}
