//! Kafka as a result table (Flink's `kafka` and `upsert-kafka` sinks, same option keys).
//!
//! `sink.delivery-guarantee`:
//! - `none`: records are handed to the producer as rows arrive;
//! - `at-least-once` (the default, as in Flink): the same, and every barrier waits until the broker
//!   acknowledged everything sent before it, so a checkpoint never covers rows still in flight;
//! - `exactly-once`: the rows of checkpoint epoch n are staged in checkpoint n (like a stored
//!   table's) and produced, once checkpoint n is complete, in one Kafka transaction of the sink
//!   subtask's transactional producer (`<prefix>-<subtask>`). The same transaction commits the
//!   epoch as the offset of the marker group `<prefix>-<subtask>`, so "epoch n is in Kafka" and
//!   the rows become visible to read_committed consumers atomically. Committing an epoch again
//!   (a restore redoes the restored checkpoint's commit) finds the marker and does nothing; a
//!   producer of a crashed attempt is fenced by the next `init_transactions` with the same id, which
//!   aborts whatever it left open. (librdkafka cannot resume another process's open transaction,
//!   which Flink's two-phase sink does by reflection; staging in the checkpoint is the way to
//!   commit after a crash without it: Flink's write-ahead sink.)

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::catalog::{ColumnDef, TableConnector, TableDef, schema_of};
use crate::connectors::kafka::{SharedOptions, client_error};
use crate::connectors::record_format::{self, RecordFormat};
use crate::error::{Error, Result, UserErrorKind};
use crate::message::split_row_kinds;
use crate::runtime::Sink;
use crate::runtime::staging::{SinkStaging, StagedFile};

/// A sink record's (key, value) bytes.
/// A record's key and value; no value is a tombstone (upsert-kafka's delete).
type EncodedRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// How long a send waits when the producer's queue is full before it tries again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(5);

/// How long a flush or a transaction step may take before the barrier or the commit fails.
const BROKER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    None,
    AtLeastOnce,
    ExactlyOnce,
}

#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    pub table: String,
    pub topic: String,
    /// `properties.*` without the prefix, given to librdkafka as they are.
    pub properties: BTreeMap<String, String>,
    pub value_format: RecordFormat,
    /// The table's columns written into the value, by index.
    pub value_columns: Vec<usize>,
    /// `key.format` and the key's columns (`key.fields`; upsert-kafka: the primary key).
    pub key: Option<(RecordFormat, Vec<usize>)>,
    pub delivery: DeliveryGuarantee,
    /// `sink.transactional-id-prefix` (exactly-once).
    pub transactional_id_prefix: String,
    /// The table's columns: records are named after them, not after the query's expressions.
    pub schema: SchemaRef,
}

impl KafkaSinkConfig {
    pub fn parse(table: &TableDef) -> Result<Self> {
        KafkaSinkConfig::from_options(&table.name, table.connector, &table.options, &table.columns, &table.primary_key)
    }

    pub fn from_options(
        table: &str,
        connector: TableConnector,
        options: &BTreeMap<String, String>,
        columns: &[ColumnDef],
        primary_key: &[String],
    ) -> Result<Self> {
        let upsert = connector == TableConnector::UpsertKafka;
        let mut topic = None;
        let mut shared = SharedOptions::default();
        let mut key_fields: Option<Vec<String>> = None;
        let mut delivery = DeliveryGuarantee::AtLeastOnce;
        let mut prefix = None;
        for (key, value) in options {
            if shared.take(key, value)? {
                continue;
            }
            match key.as_str() {
                "topic" => topic = Some(value.clone()),
                "key.fields" if !upsert => {
                    key_fields = Some(value.split(';').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect())
                }
                "sink.delivery-guarantee" if !upsert => {
                    delivery = match value.to_ascii_lowercase().as_str() {
                        "none" => DeliveryGuarantee::None,
                        "at-least-once" => DeliveryGuarantee::AtLeastOnce,
                        "exactly-once" => DeliveryGuarantee::ExactlyOnce,
                        other => {
                            return Err(Error::invalid(format!(
                                "'sink.delivery-guarantee' = '{other}' is unknown; use 'exactly-once', 'at-least-once' or 'none'"
                            )));
                        }
                    }
                }
                "sink.transactional-id-prefix" if !upsert => prefix = Some(value.clone()),
                other => {
                    return Err(Error::invalid(format!(
                        "unknown option '{other}' for the {} connector; it takes topic, properties.*, format, key.format, {}value.fields-include{}",
                        connector.name(),
                        if upsert { "" } else { "key.fields, " },
                        if upsert {
                            ""
                        } else {
                            ", sink.delivery-guarantee, sink.transactional-id-prefix"
                        }
                    )));
                }
            }
        }
        let (properties, key_format, except_key) = (shared.properties, shared.key_format, shared.except_key);
        let topic = topic.ok_or_else(|| Error::invalid(format!("the {} connector needs 'topic'", connector.name())))?;
        if topic.contains(';') {
            return Err(Error::invalid("a Kafka table writes one topic"));
        }
        if !properties.contains_key("bootstrap.servers") {
            return Err(Error::invalid(format!(
                "the {} connector needs 'properties.bootstrap.servers'",
                connector.name()
            )));
        }
        if properties.contains_key("transactional.id") {
            return Err(Error::invalid(
                "'properties.transactional.id' is set by Weir; use 'sink.transactional-id-prefix'",
            ));
        }
        let value_format = shared.value_format.ok_or_else(|| {
            Error::invalid(format!(
                "the {} connector needs 'format' ('json', 'csv' or 'raw')",
                connector.name()
            ))
        })?;
        let index_of = |name: &String| {
            columns
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| Error::not_found("key column", name))
        };
        let key_fields = if upsert {
            if primary_key.is_empty() {
                return Err(Error::invalid("an 'upsert-kafka' table needs a PRIMARY KEY: it is the record key"));
            }
            if key_format.is_none() {
                return Err(Error::invalid("an 'upsert-kafka' table needs 'key.format'"));
            }
            Some(primary_key.to_vec())
        } else {
            key_fields
        };
        let key = match (key_format, key_fields) {
            (Some(format), Some(fields)) if !fields.is_empty() => {
                let indices = fields.iter().map(index_of).collect::<Result<Vec<_>>>()?;
                let schema = projected(columns, &indices)?;
                format.check(&schema).map_err(|e| e.context("key.format"))?;
                Some((format, indices))
            }
            (None, None) => None,
            (Some(_), _) => return Err(Error::invalid("'key.format' needs 'key.fields'")),
            (None, Some(_)) => return Err(Error::invalid("'key.fields' needs 'key.format'")),
        };
        if except_key && key.is_none() {
            return Err(Error::invalid("'value.fields-include' = 'EXCEPT_KEY' needs a key"));
        }
        let value_columns: Vec<usize> = (0..columns.len())
            .filter(|i| !(except_key && key.as_ref().is_some_and(|(_, k)| k.contains(i))))
            .collect();
        value_format
            .check(&projected(columns, &value_columns)?)
            .map_err(|e| e.context("format"))?;
        Ok(KafkaSinkConfig {
            table: table.to_string(),
            topic,
            properties,
            value_format,
            value_columns,
            key,
            delivery,
            transactional_id_prefix: prefix.unwrap_or_else(|| format!("weir-{table}")),
            schema: schema_of(columns)?,
        })
    }

    /// Sends a record for each row of `batch`. When the producer's queue is full, `wait` runs and
    /// the record is sent again: backpressure until the broker acknowledged earlier ones.
    fn send_batch(&self, producer: &ThreadedProducer<DeliveryReport>, batch: &RecordBatch, wait: impl Fn()) -> Result<()> {
        for (key, value) in self.records(batch)? {
            let mut record: BaseRecord<'_, Vec<u8>, Vec<u8>> = BaseRecord::to(&self.topic);
            if let Some(value) = &value {
                record = record.payload(value);
            }
            if let Some(key) = &key {
                record = record.key(key);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        wait();
                    }
                    Err((e, _)) => return Err(self.error("cannot send a record", e)),
                }
            }
        }
        Ok(())
    }

    /// The (key, value) records of `batch`'s rows. A changelog's update-before and delete rows
    /// become tombstones of their key (only upsert-kafka takes a changelog).
    fn records(&self, batch: &RecordBatch) -> Result<Vec<EncodedRecord>> {
        let (batch, kinds) = split_row_kinds(batch)?;
        let batch = &RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?;
        let values = record_format::encode(self.value_format, &batch.project(&self.value_columns)?)?;
        let keys: Vec<Option<Vec<u8>>> = match &self.key {
            Some((format, columns)) => record_format::encode(*format, &batch.project(columns)?)?
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None; values.len()],
        };
        let values = values.into_iter().enumerate().map(|(i, value)| match &kinds {
            Some(kinds) if kinds[i].is_retraction() => None,
            _ => Some(value),
        });
        Ok(keys.into_iter().zip(values).collect())
    }

    fn client(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        client.set("client.id", format!("weir-{}", self.table));
        for (key, value) in &self.properties {
            client.set(key, value);
        }
        client
    }

    fn error(&self, what: &str, error: KafkaError) -> Error {
        client_error(&format!("Kafka table '{}' (topic '{}')", self.table, self.topic), what, error)
    }
}

/// Runs a wait for the broker on a runtime worker: tokio moves the worker's other tasks away
/// first where it can (a multi-threaded runtime).
fn blocking<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

fn projected(columns: &[ColumnDef], indices: &[usize]) -> Result<SchemaRef> {
    schema_of(&indices.iter().filter_map(|i| columns.get(*i).cloned()).collect::<Vec<_>>())
}

/// Remembers the first delivery failure, reported at the next write or barrier.
#[derive(Default)]
struct DeliveryReport {
    failure: Mutex<Option<String>>,
}

impl ClientContext for DeliveryReport {}

impl ProducerContext for DeliveryReport {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result
            && let Ok(mut failure) = self.failure.lock()
        {
            failure.get_or_insert_with(|| error.to_string());
        }
    }
}

/// A sink subtask writing records as rows arrive (`none`, `at-least-once`).
pub struct KafkaSink {
    config: Arc<KafkaSinkConfig>,
    producer: ThreadedProducer<DeliveryReport>,
}

impl KafkaSink {
    pub fn open(config: KafkaSinkConfig) -> Result<Self> {
        let mut client = config.client();
        if config.delivery == DeliveryGuarantee::AtLeastOnce {
            client.set("acks", "all");
        }
        let producer = client
            .create_with_context(DeliveryReport::default())
            .map_err(|e| config.error("cannot create the producer", e))?;
        Ok(KafkaSink {
            config: Arc::new(config),
            producer,
        })
    }

    fn check_deliveries(&self) -> Result<()> {
        let failure = self.producer.context().failure.lock().map(|f| f.clone()).unwrap_or(None);
        match failure {
            Some(failure) => Err(Error::user(
                UserErrorKind::ExternalSystem,
                format!(
                    "Kafka table '{}' (topic '{}'): a record was not delivered: {failure}",
                    self.config.table, self.config.topic
                ),
            )),
            None => Ok(()),
        }
    }

    fn flush(&self) -> Result<()> {
        blocking(|| self.producer.flush(BROKER_TIMEOUT))
            .map_err(|e| self.config.error("the broker did not acknowledge the records in time", e))?;
        self.check_deliveries()
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.check_deliveries()?;
        self.config
            .send_batch(&self.producer, &batch, || blocking(|| std::thread::sleep(QUEUE_FULL_WAIT)))
    }

    fn prepare_commit(&mut self) -> Result<Option<StagedFile>> {
        if self.config.delivery == DeliveryGuarantee::AtLeastOnce {
            self.flush()?;
        }
        Ok(None)
    }

    fn finish(&mut self) -> Result<()> {
        self.flush()
    }
}

/// An `exactly-once` sink subtask: rows are staged until their checkpoint completes and then
/// committed by [`KafkaTransactions`].
pub struct StagedKafkaSink {
    staging: SinkStaging,
}

impl StagedKafkaSink {
    pub fn new(staging: SinkStaging) -> Self {
        StagedKafkaSink { staging }
    }
}

impl Sink for StagedKafkaSink {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.staging.push(&batch)
    }

    fn prepare_commit(&mut self) -> Result<Option<StagedFile>> {
        self.staging.take()
    }
}

/// One sink subtask's transactional producer and the consumer whose group holds its marker.
struct SubtaskTransactions {
    producer: ThreadedProducer<DeliveryReport>,
    marker: BaseConsumer,
}

/// Phase two of an `exactly-once` Kafka table: commits each sink subtask's staged rows of an epoch
/// in one transaction, with the epoch as the marker (see the module comment).
pub struct KafkaTransactions {
    config: KafkaSinkConfig,
    subtasks: Mutex<HashMap<usize, SubtaskTransactions>>,
}

impl KafkaTransactions {
    pub fn new(config: KafkaSinkConfig) -> Self {
        KafkaTransactions {
            config,
            subtasks: Mutex::new(HashMap::new()),
        }
    }

    fn marker_group(&self, subtask: usize) -> String {
        format!("{}-{subtask}", self.config.transactional_id_prefix)
    }

    /// The marker is the offset of partition 0 of the output topic in the marker group.
    fn marker_list(&self, epoch: Option<u64>) -> Result<TopicPartitionList> {
        let mut list = TopicPartitionList::new();
        match epoch {
            // FINAL_EPOCH (u64::MAX) is the largest marker there is.
            Some(epoch) => list
                .add_partition_offset(&self.config.topic, 0, Offset::Offset(i64::try_from(epoch).unwrap_or(i64::MAX)))
                .map_err(|e| self.config.error("cannot build the commit marker", e))?,
            None => {
                list.add_partition(&self.config.topic, 0);
            }
        }
        Ok(list)
    }

    fn open_subtask(&self, subtask: usize) -> Result<SubtaskTransactions> {
        let id = self.marker_group(subtask);
        let producer: ThreadedProducer<DeliveryReport> = self
            .config
            .client()
            .set("transactional.id", &id)
            .set("enable.idempotence", "true")
            .create_with_context(DeliveryReport::default())
            .map_err(|e| self.config.error("cannot create the transactional producer", e))?;
        // Fences a producer of an earlier attempt with the same id and aborts what it left open.
        producer
            .init_transactions(BROKER_TIMEOUT)
            .map_err(|e| self.config.error(&format!("cannot start transactions as '{id}'"), e))?;
        let marker: BaseConsumer = self
            .config
            .client()
            .set("group.id", &id)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| self.config.error("cannot create the marker consumer", e))?;
        Ok(SubtaskTransactions { producer, marker })
    }

    /// A job restored from checkpoint `epoch` commits its later epochs again: markers beyond it
    /// are set back to it for sink subtasks `0..subtasks` (blocking). The rows those epochs wrote
    /// stay in the topic, as Kafka cannot take them back (Flink's restore of an older savepoint
    /// writes them again too).
    pub fn rewind(&self, epoch: u64, subtasks: usize) -> Result<()> {
        for subtask in 0..subtasks {
            let parts = self.open_subtask(subtask)?;
            if self.committed_epoch(&parts)?.is_some_and(|done| done > epoch) {
                parts
                    .marker
                    .commit(&self.marker_list(Some(epoch))?, rdkafka::consumer::CommitMode::Sync)
                    .map_err(|e| self.config.error("cannot set the commit marker back", e))?;
            }
        }
        Ok(())
    }

    /// The last epoch sink subtask `subtask` committed, if any.
    fn committed_epoch(&self, parts: &SubtaskTransactions) -> Result<Option<u64>> {
        let committed = parts
            .marker
            .committed_offsets(self.marker_list(None)?, BROKER_TIMEOUT)
            .map_err(|e| self.config.error("cannot read the commit marker", e))?;
        Ok(match committed.find_partition(&self.config.topic, 0).map(|e| e.offset()) {
            Some(Offset::Offset(n)) if n >= 0 => Some(n as u64),
            _ => None,
        })
    }

    /// Commits the rows sink subtask `subtask` staged in `epoch`, unless it already did (blocking).
    pub fn commit(&self, subtask: usize, epoch: u64, rows: &[StagedFile]) -> Result<()> {
        let mut subtasks = self
            .subtasks
            .lock()
            .map_err(|_| Error::internal("Kafka transactions lock poisoned"))?;
        let parts = match subtasks.entry(subtask) {
            std::collections::hash_map::Entry::Occupied(parts) => parts.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(self.open_subtask(subtask)?),
        };
        if self.committed_epoch(parts)?.is_some_and(|done| done >= epoch.min(i64::MAX as u64)) {
            return Ok(());
        }
        let result = self.produce_in_transaction(parts, epoch, rows);
        if result.is_err() {
            // The next attempt starts over with a new producer (init_transactions aborts this one's).
            subtasks.remove(&subtask);
        }
        result
    }

    fn produce_in_transaction(&self, parts: &SubtaskTransactions, epoch: u64, rows: &[StagedFile]) -> Result<()> {
        let producer = &parts.producer;
        producer
            .begin_transaction()
            .map_err(|e| self.config.error("cannot begin a transaction", e))?;
        for file in rows {
            for batch in file.batches()? {
                // On the blocking pool already: a plain sleep.
                self.config.send_batch(producer, &batch?, || std::thread::sleep(QUEUE_FULL_WAIT))?;
            }
        }
        let group = parts
            .marker
            .group_metadata()
            .ok_or_else(|| Error::internal("the marker consumer has no group metadata"))?;
        producer
            .send_offsets_to_transaction(&self.marker_list(Some(epoch))?, &group, BROKER_TIMEOUT)
            .map_err(|e| self.config.error("cannot add the commit marker to the transaction", e))?;
        producer
            .commit_transaction(BROKER_TIMEOUT)
            .map_err(|e| self.config.error("cannot commit the transaction", e))?;
        if let Ok(failure) = producer.context().failure.lock()
            && let Some(failure) = failure.as_ref()
        {
            return Err(Error::user(
                UserErrorKind::ExternalSystem,
                format!("Kafka table '{}': {failure}", self.config.table),
            ));
        }
        Ok(())
    }
}
