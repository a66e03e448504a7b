//! A Kafka source subtask: an assign-mode consumer (rdkafka) over the partitions this subtask owns
//! (`kafka::owner`). Starting offsets are resolved to numbers before the first fetch, so every
//! checkpoint holds a concrete next offset for every partition, even one that sent nothing yet.
//! Records are decoded per partition (each batch is one partition's, for per-partition
//! watermarks); a barrier records the offsets of the rows handed out, not those fetched.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{FutureExt, StreamExt};
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::connectors::kafka::{KafkaPosition, KafkaSourceConfig, RecordColumn, RecordMeta, owner};
use crate::connectors::kafka_offsets::{kafka_error, partitions, start_offsets, stop_offsets};
use crate::error::{Error, Result};
use crate::runtime::{Source, SourcePosition, SplitId};

mod fetched;

use fetched::{Fetched, PartDecoder};

/// How long a bounded source waits for a record before it asks the consumer whether partitions
/// moved past their stop offset without a record (`Event::CheckEnds`).
const CHECK_ENDS_EVERY: Duration = Duration::from_millis(200);

/// A partition this subtask reads.
struct Split {
    topic: String,
    partition: i32,
    /// The offset after the last record handed out (what a checkpoint records).
    next: i64,
    /// The offset after the last record fetched (records below it are duplicates).
    fetched: i64,
    /// A bounded source's end: records from here on are not read.
    stop: Option<i64>,
    /// In the consumer's assignment (a finished partition is taken out).
    fetching: bool,
}

impl From<Assignment> for Split {
    fn from(a: Assignment) -> Self {
        Split {
            topic: a.topic,
            partition: a.partition,
            next: a.next,
            fetched: a.next,
            stop: a.stop,
            fetching: a.stop.is_none_or(|stop| a.next < stop),
        }
    }
}

impl Split {
    fn finished(&self) -> bool {
        self.stop.is_some_and(|stop| self.next >= stop)
    }
}

/// A partition to add to the assignment, resolved on a blocking thread.
struct Assignment {
    topic: String,
    partition: i32,
    next: i64,
    stop: Option<i64>,
}

/// A decoded batch of one partition, waiting to be handed out.
struct Ready {
    split: SplitId,
    batch: RecordBatch,
    /// The partition's next offset once this batch is out.
    next: i64,
}

pub struct KafkaSource {
    config: Arc<KafkaSourceConfig>,
    /// The columns handed out: `columns` of the source's record columns.
    schema: SchemaRef,
    columns: Vec<usize>,
    subtask: usize,
    parallelism: usize,
    consumer: Arc<StreamConsumer>,
    /// Where a restore said to resume (partitions -> next offset); partitions not in it start
    /// by `scan.startup.mode`, or (found later) at the earliest offset.
    restored: KafkaPosition,
    /// The first assignment's offsets being resolved (blocking broker requests, on a thread).
    setup: Option<JoinHandle<Result<Vec<Assignment>>>>,
    assigned: bool,
    splits: Vec<Split>,
    /// Partitions found by discovery being resolved.
    discovery: Option<JoinHandle<Result<Vec<Assignment>>>>,
    next_discovery: Option<Instant>,
    ready: VecDeque<Ready>,
    last_split: Option<SplitId>,
    /// Records skipped as malformed (`*.ignore-parse-errors`), and those not yet counted by the task.
    skipped: u64,
    skipped_untaken: u64,
    /// The decoders of the value and key parts whose columns are read, each of only those columns.
    value: Option<PartDecoder>,
    key: Option<PartDecoder>,
    /// Emptied fetch buffers, reused so a steady stream of records allocates nothing new.
    spare: Vec<Fetched>,
}

/// Creates the librdkafka consumer: the user's `properties.*` as they are, plus what Weir owns
/// (offsets are stored and committed only when checkpoints complete; no end-of-partition events).
fn consumer(config: &KafkaSourceConfig, subtask: usize) -> Result<StreamConsumer> {
    let mut client = ClientConfig::new();
    client.set("client.id", format!("weir-{}-{subtask}", config.source));
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    if config.group().is_none() {
        // librdkafka assigns partitions only to a consumer with a group; this one is never
        // joined and nothing is committed to it (offsets go to the user's group only).
        client.set("group.id", format!("weir-{}", config.source));
    }
    client
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    client
        .create()
        .map_err(|e| kafka_error(config, "cannot create the Kafka consumer", e))
}

/// Creates (and drops) a consumer, so CREATE SOURCE reports properties librdkafka refuses. No
/// broker is contacted.
pub fn check_properties(config: &KafkaSourceConfig) -> Result<()> {
    consumer(config, 0).map(|_| ())
}

impl KafkaSource {
    /// `records`: the source's record columns (declared order, computed ones left out);
    /// `columns`: which of them to hand out.
    pub fn open(config: KafkaSourceConfig, records: SchemaRef, columns: &[usize], subtask: usize, parallelism: usize) -> Result<Self> {
        let consumer = Arc::new(consumer(&config, subtask)?);
        let read = |part: fn(&RecordColumn) -> Option<usize>| {
            columns
                .iter()
                .filter_map(|c| config.columns.get(*c).and_then(part))
                .collect::<Vec<_>>()
        };
        let value_read = read(|c| if let RecordColumn::Value(i) = c { Some(*i) } else { None });
        let key_read = read(|c| if let RecordColumn::Key(i) = c { Some(*i) } else { None });
        let value = PartDecoder::of(config.value_format, &config.value_schema, value_read.into_iter())?;
        let key = match &config.key {
            Some((format, schema)) => PartDecoder::of(*format, schema, key_read.into_iter())?,
            None => None,
        };
        Ok(KafkaSource {
            schema: Arc::new(records.project(columns)?),
            columns: columns.to_vec(),
            config: Arc::new(config),
            subtask,
            parallelism,
            consumer,
            restored: KafkaPosition::default(),
            setup: None,
            assigned: false,
            splits: Vec::new(),
            discovery: None,
            next_discovery: None,
            ready: VecDeque::new(),
            last_split: None,
            skipped: 0,
            skipped_untaken: 0,
            value,
            key,
            spare: Vec::new(),
        })
    }

    /// Starts resolving the offsets of this subtask's partitions (`initial`: by the startup mode;
    /// otherwise new partitions, from the earliest offset), skipping `known` ones.
    fn resolve(&self, initial: bool) -> JoinHandle<Result<Vec<Assignment>>> {
        let (config, consumer, restored) = (self.config.clone(), self.consumer.clone(), self.restored.clone());
        let (subtask, parallelism) = (self.subtask, self.parallelism);
        let known: Vec<(String, i32)> = self.splits.iter().map(|s| (s.topic.clone(), s.partition)).collect();
        tokio::task::spawn_blocking(move || {
            let partitions: Vec<(String, i32)> = partitions(&config, &consumer, initial)?
                .into_iter()
                .filter(|(t, p)| owner(t, *p, parallelism) == subtask && !known.contains(&(t.clone(), *p)))
                .collect();
            let starts = start_offsets(&config, &consumer, &restored, partitions, initial)?;
            let stops = stop_offsets(&config, &consumer, &restored, &starts)?;
            Ok(starts
                .into_iter()
                .zip(stops)
                .map(|((topic, partition, next), stop)| Assignment {
                    topic,
                    partition,
                    next,
                    stop,
                })
                .collect())
        })
    }

    /// Adds partitions (with their next offsets) to the consumer's assignment.
    fn assign(&mut self, found: Vec<Assignment>) -> Result<()> {
        let mut list = TopicPartitionList::new();
        let found: Vec<Split> = found.into_iter().map(Split::from).collect();
        for split in found.iter().filter(|s| s.fetching) {
            list.add_partition_offset(&split.topic, split.partition, Offset::Offset(split.next))
                .map_err(|e| kafka_error(&self.config, "cannot assign partitions", e))?;
        }
        if list.count() == 0 {
            self.splits.extend(found);
            return Ok(());
        }
        self.consumer
            .incremental_assign(&list)
            .map_err(|e| kafka_error(&self.config, "cannot assign partitions", e))?;
        for split in found {
            tracing::info!(
                "Kafka source '{}' subtask {}: reading {} partition {} from offset {}{}",
                self.config.source,
                self.subtask,
                split.topic,
                split.partition,
                split.next,
                split.stop.map_or(String::new(), |stop| format!(" up to {stop}"))
            );
            self.splits.push(split);
        }
        Ok(())
    }

    /// Stops fetching partitions that reached their stop offset.
    fn unassign_finished(&mut self) -> Result<()> {
        let mut list = TopicPartitionList::new();
        for split in self.splits.iter_mut().filter(|s| s.finished() && s.fetching) {
            list.add_partition(&split.topic, split.partition);
            split.fetching = false;
        }
        if list.count() > 0 {
            self.consumer
                .incremental_unassign(&list)
                .map_err(|e| kafka_error(&self.config, "cannot unassign finished partitions", e))?;
        }
        Ok(())
    }

    /// A bounded source: every partition reached its stop offset.
    fn all_finished(&self) -> bool {
        self.config.bounded.is_some() && self.assigned && self.splits.iter().all(Split::finished)
    }

    /// Moves partitions on past offsets the consumer skipped without handing out a record
    /// (transaction markers, aborted records), so a bounded read ends at its stop offset. Only
    /// called when every handed-out record is out (`ready` is empty).
    fn check_ends(&mut self) -> Result<()> {
        let positions = self
            .consumer
            .position()
            .map_err(|e| kafka_error(&self.config, "cannot read the consumer's positions", e))?;
        for split in self.splits.iter_mut().filter(|s| !s.finished()) {
            if let Some(Offset::Offset(position)) = positions.find_partition(&split.topic, split.partition).map(|e| e.offset())
                && position > split.next
            {
                split.next = position;
            }
        }
        self.unassign_finished()
    }

    fn split_of(&self, topic: &str, partition: i32) -> Option<SplitId> {
        self.splits
            .iter()
            .position(|s| s.partition == partition && s.topic == topic)
            .map(|i| i as SplitId)
    }

    /// Hands out the next decoded batch; batches that lost all rows (tombstones, skipped records)
    /// only move their partition on.
    fn pop_ready(&mut self) -> Option<RecordBatch> {
        while let Some(ready) = self.ready.pop_front() {
            if let Some(split) = self.splits.get_mut(ready.split as usize) {
                split.next = ready.next;
            }
            if ready.batch.num_rows() > 0 {
                self.last_split = Some(ready.split);
                return Some(ready.batch);
            }
        }
        None
    }

    /// Takes `first` and whatever else the consumer has at hand (up to a batch), decodes each
    /// partition's records, and queues the batches.
    fn take_fetched(&mut self, consumer: &StreamConsumer, first: BorrowedMessage<'_>) -> Result<()> {
        let mut fetched: BTreeMap<SplitId, Fetched> = BTreeMap::new();
        let mut cached: Option<(SplitId, i32)> = None;
        let wants_headers = self
            .columns
            .iter()
            .any(|c| self.config.columns[*c] == RecordColumn::Meta(RecordMeta::Headers));
        // Keys are copied out only for a key format whose columns are read.
        let wants_keys = self.key.is_some();
        let mut add = |source: &mut KafkaSource, message: &BorrowedMessage<'_>| {
            let split = match cached {
                Some((split, partition)) if partition == message.partition() && source.splits[split as usize].topic == message.topic() => {
                    Some(split)
                }
                _ => source.split_of(message.topic(), message.partition()),
            };
            let Some(split) = split else { return };
            cached = Some((split, message.partition()));
            let state = &mut source.splits[split as usize];
            if !state.fetching || message.offset() < state.fetched || state.stop.is_some_and(|stop| message.offset() >= stop) {
                return;
            }
            state.fetched = message.offset() + 1;
            let records = fetched.entry(split).or_insert_with(|| source.spare.pop().unwrap_or_default());
            records.next = message.offset() + 1;
            // A record without a value (a tombstone) has no row in an append-only source.
            let value = message.payload();
            if value.is_none() && !source.config.upsert {
                return;
            }
            records.offsets.push(message.offset());
            records.values.extend_from_slice(value.unwrap_or_default());
            records.value_ends.push(records.values.len());
            records.tombstones.push(value.is_none());
            if wants_keys {
                records.keys.push(message.key().map(<[u8]>::to_vec));
            }
            let (millis, kind) = match message.timestamp() {
                Timestamp::CreateTime(t) => (Some(t), "CreateTime"),
                Timestamp::LogAppendTime(t) => (Some(t), "LogAppendTime"),
                Timestamp::NotAvailable => (None, "NoTimestampType"),
            };
            records.timestamps.push(millis.filter(|t| *t >= 0));
            records.timestamp_types.push(kind);
            if wants_headers {
                if let Some(headers) = message.headers() {
                    records
                        .headers
                        .extend(headers.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))));
                }
                records.header_ends.push(records.headers.len());
            }
        };
        add(self, &first);
        drop(first);
        // One stream for the whole batch: `recv` makes a stream per message, registering and
        // dropping a waker slot (two mutex locks) each time.
        let mut messages = consumer.stream();
        let mut taken = 1;
        while taken < self.config.batch_size {
            match messages.next().now_or_never() {
                Some(Some(Ok(message))) => add(self, &message),
                Some(Some(Err(error))) => self.consumer_error(error)?,
                Some(None) | None => break,
            }
            taken += 1;
        }
        for (split, mut records) in fetched {
            let batch = self.decode(split, &records)?;
            self.ready.push_back(Ready {
                split,
                batch,
                next: records.next,
            });
            records.clear();
            self.spare.push(records);
        }
        Ok(())
    }

    /// An error the consumer reported: missing topics and refused access fail the job; the rest
    /// (a broker down, a lost connection) librdkafka retries by itself, so they are only logged.
    fn consumer_error(&self, error: KafkaError) -> Result<()> {
        let fatal = match &error {
            KafkaError::MessageConsumptionFatal(_) => true,
            KafkaError::MessageConsumption(code) => matches!(
                code,
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::GroupAuthorizationFailed
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::OffsetOutOfRange
            ),
            _ => false,
        };
        if fatal {
            return Err(kafka_error(&self.config, "reading failed", error));
        }
        tracing::warn!("Kafka source '{}' subtask {}: {error} (retrying)", self.config.source, self.subtask);
        Ok(())
    }
}

/// What the next step of `next_batch` waits for.
enum Event<'a> {
    Message(std::result::Result<BorrowedMessage<'a>, KafkaError>),
    DiscoveryDue,
    Discovered(Result<Vec<Assignment>>),
    /// A bounded source checks whether partitions reached their stop offset past records it is
    /// never handed (transaction markers, aborted records).
    CheckEnds,
}

#[async_trait]
impl Source for KafkaSource {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(batch) = self.pop_ready() {
                return Ok(Some(batch));
            }
            if self.all_finished() {
                return Ok(None);
            }
            if !self.assigned {
                // The handle stays in `self` while it is awaited: a barrier may drop this call.
                if self.setup.is_none() {
                    self.setup = Some(self.resolve(true));
                }
                let Some(setup) = self.setup.as_mut() else { continue };
                let found = setup
                    .await
                    .map_err(|e| Error::internal(format!("Kafka partition lookup failed: {e}")))?;
                self.setup = None;
                self.assign(found?)?;
                self.assigned = true;
                self.next_discovery = self.config.discovery_interval.map(|i| Instant::now() + i);
                if self.splits.is_empty() && self.config.bounded.is_none() {
                    // Wakes the task so it sees `has_no_input` and declares the subtask idle.
                    return Ok(Some(RecordBatch::new_empty(self.schema.clone())));
                }
                continue;
            }
            let consumer = self.consumer.clone();
            let bounded = self.config.bounded.is_some();
            let event = {
                let discovery = &mut self.discovery;
                let next_discovery = self.next_discovery;
                tokio::select! {
                    message = consumer.recv() => Event::Message(message),
                    found = async {
                        match discovery.as_mut() {
                            Some(lookup) => lookup.await,
                            None => std::future::pending().await,
                        }
                    } => Event::Discovered(found.map_err(|e| Error::internal(format!("Kafka partition discovery failed: {e}"))).and_then(|f| f)),
                    () = sleep_until(next_discovery), if discovery.is_none() => Event::DiscoveryDue,
                    () = tokio::time::sleep(CHECK_ENDS_EVERY), if bounded => Event::CheckEnds,
                }
            };
            match event {
                Event::Message(Ok(message)) => {
                    self.take_fetched(&consumer, message)?;
                    if bounded {
                        self.unassign_finished()?;
                    }
                }
                Event::CheckEnds => self.check_ends()?,
                Event::Message(Err(error)) => self.consumer_error(error)?,
                Event::DiscoveryDue => {
                    self.discovery = Some(self.resolve(false));
                    self.next_discovery = self.config.discovery_interval.map(|i| Instant::now() + i);
                }
                Event::Discovered(found) => {
                    self.discovery = None;
                    match found {
                        Ok(found) => self.assign(found)?,
                        // The brokers may be away for a while; the next round tries again.
                        Err(e) => tracing::warn!("Kafka source '{}': partition discovery failed: {e}", self.config.source),
                    }
                }
            }
        }
    }

    /// From the log ends librdkafka learned with its last fetches (no broker request here).
    fn backlog(&self) -> Option<u64> {
        let mut behind = 0;
        let mut known = false;
        for split in &self.splits {
            let Ok(topic) = std::ffi::CString::new(split.topic.as_str()) else {
                continue;
            };
            let (mut start, mut end) = (0i64, 0i64);
            // SAFETY: the client lives as long as `self.consumer`; `topic` is NUL-terminated and
            // outlives the call; librdkafka only writes the two offsets (rdkafka has no safe
            // wrapper of this cached, request-free lookup).
            let answer = unsafe {
                rdkafka::bindings::rd_kafka_get_watermark_offsets(
                    self.consumer.client().native_ptr(),
                    topic.as_ptr(),
                    split.partition,
                    &mut start,
                    &mut end,
                )
            };
            // Before the first fetch answer the end is unknown (negative).
            if answer == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && end >= 0 {
                let end = split.stop.map_or(end, |stop| stop.min(end));
                behind += u64::try_from(end - split.next).unwrap_or(0);
                known = true;
            }
        }
        known.then_some(behind)
    }

    fn position(&self) -> SourcePosition {
        let mut position = self.restored.clone();
        for split in &self.splits {
            position
                .offsets
                .entry(split.topic.clone())
                .or_default()
                .insert(split.partition, split.next);
            if let Some(stop) = split.stop {
                position.stops.entry(split.topic.clone()).or_default().insert(split.partition, stop);
            }
        }
        // Keep only this subtask's partitions: a merged restore position lists every old subtask's.
        for offsets in [&mut position.offsets, &mut position.stops] {
            for (topic, partitions) in offsets.iter_mut() {
                partitions.retain(|p, _| owner(topic, *p, self.parallelism) == self.subtask);
            }
            offsets.retain(|_, p| !p.is_empty());
        }
        position.encode()
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<()> {
        self.restored = KafkaPosition::decode(position)?;
        Ok(())
    }

    fn last_split(&self) -> Option<SplitId> {
        self.last_split
    }

    /// Every assigned partition: the per-split watermark is the minimum over all of them, so a
    /// partition that has not delivered yet holds it back (without this, a backlog read from one
    /// partition first made every other partition's rows late).
    fn splits(&self) -> Vec<SplitId> {
        // A finished partition (bounded source) holds nothing back any more.
        (0..self.splits.len())
            .filter(|i| !self.splits[*i].finished())
            .map(|i| i as SplitId)
            .collect()
    }

    fn has_no_input(&self) -> bool {
        self.assigned && self.splits.is_empty()
    }

    fn take_skipped_records(&mut self) -> u64 {
        std::mem::take(&mut self.skipped_untaken)
    }

    fn checkpoint_completed(&mut self, position: &SourcePosition) {
        if self.config.group().is_none() {
            return;
        }
        let Ok(position) = KafkaPosition::decode(position) else { return };
        let mut list = TopicPartitionList::new();
        for (topic, partitions) in &position.offsets {
            for (partition, next) in partitions {
                let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
        }
        if list.count() > 0
            && let Err(e) = self.consumer.commit(&list, CommitMode::Async)
        {
            tracing::warn!("Kafka source '{}': cannot commit offsets to the group: {e}", self.config.source);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDef, ColumnKind};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn source(extra: &[(&str, &str)]) -> KafkaSource {
        let mut options = BTreeMap::from([
            ("topic".to_string(), "bids".to_string()),
            // Nothing listens here; assigning partitions does not contact the brokers.
            ("properties.bootstrap.servers".to_string(), "127.0.0.1:9".to_string()),
            ("format".to_string(), "json".to_string()),
            ("scan.startup.mode".to_string(), "earliest-offset".to_string()),
        ]);
        options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let columns = [ColumnDef {
            name: "price".into(),
            sql_type: "BIGINT".into(),
            nullable: true,
            kind: ColumnKind::Physical,
        }];
        let config = KafkaSourceConfig::from_options("bids", &options, &columns).unwrap();
        let records = Arc::new(Schema::new(vec![Field::new("price", DataType::Int64, true)]));
        KafkaSource::open(config, records, &[0], 0, 1).unwrap()
    }

    fn assignment(partition: i32, next: i64, stop: Option<i64>) -> Assignment {
        Assignment {
            topic: "bids".into(),
            partition,
            next,
            stop,
        }
    }

    /// The per-split watermark takes its minimum over `splits()`: every assigned partition must be
    /// in it from the start, before any of them delivered a record.
    #[tokio::test]
    async fn every_assigned_partition_is_a_split_before_it_delivers() {
        let mut source = source(&[]);
        assert!(source.splits().is_empty());
        source.assign(vec![assignment(0, 0, None), assignment(1, 0, None)]).unwrap();
        assert_eq!(source.splits(), vec![0, 1]);
        assert!(!source.has_no_input());
    }

    /// A bounded source: a partition at its stop offset is finished (no split, not fetched), its
    /// stop is in the position, and the source ends when all are.
    #[tokio::test]
    async fn a_bounded_source_ends_when_every_partition_reached_its_stop() {
        let mut source = source(&[("scan.bounded.mode", "latest-offset")]);
        source.assign(vec![assignment(0, 5, Some(5)), assignment(1, 3, Some(8))]).unwrap();
        source.assigned = true;
        assert_eq!(source.splits(), vec![1]);
        assert!(!source.all_finished());
        let position = KafkaPosition::decode(&source.position()).unwrap();
        assert_eq!((position.get("bids", 1), position.stop("bids", 1)), (Some(3), Some(8)));
        source.splits[1].next = 8;
        source.unassign_finished().unwrap();
        assert!(source.splits().is_empty());
        assert!(source.all_finished());
        assert!(source.next_batch().await.unwrap().is_none());
    }
}
