//! Sources and sinks: the nexmark and datagen generators, CSV / JSON-lines files, result tables
//! stored in Weir, and the blackhole and print sinks. `open_source` and `open_sink` build a subtask's
//! instance from catalog definitions; the `*_table` modules make them visible to batch SQL.

pub mod csv_lines;
pub mod datagen;
pub mod file;
pub mod file_reader;
pub mod file_split;
pub mod filesystem_sink;
pub mod kafka;
pub mod kafka_offsets;
pub mod kafka_sink;
pub mod kafka_source;
pub mod lookup;
pub mod nexmark;
pub mod pacer;
pub mod print;
pub mod record_format;
pub mod rescale;
pub mod split_watermarks;
pub mod table_store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::physical_expr::PhysicalExprRef;

use crate::catalog::{ColumnDef, ColumnKind, SourceDef, TableConnector, TableDef, schema_of};
use crate::data_dir::FileRoots;
use crate::error::{Error, Result};
use crate::graph::SinkMode;
use crate::message::{EventTime, split_row_kinds, with_row_kinds};
use crate::planner::computed_column;
use crate::runtime::{Sink, Source, SourcePosition, SplitId};
use crate::settings::parse_duration;

/// The connectors a source can use; a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceConnector {
    Nexmark,
    Datagen,
    File,
    Kafka,
    UpsertKafka,
}

impl SourceConnector {
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "nexmark" => Ok(SourceConnector::Nexmark),
            "datagen" => Ok(SourceConnector::Datagen),
            "file" | "filesystem" => Ok(SourceConnector::File),
            "kafka" => Ok(SourceConnector::Kafka),
            "upsert-kafka" => Ok(SourceConnector::UpsertKafka),
            other => Err(Error::invalid(format!(
                "unknown connector '{other}' for a source; use 'kafka', 'upsert-kafka', 'file', 'nexmark' or 'datagen'"
            ))),
        }
    }
}

/// Source option for tests: the source task fails the first time it reaches this row.
const FAIL_AT_ROW: &str = "fail.at.row";
/// Source option: how long a source may hold rows back to fill a batch.
const BATCH_LINGER: &str = "batch.linger";

/// A connector's own options, parsed.
#[derive(Debug, Clone)]
enum ConnectorConfig {
    Nexmark(nexmark::NexmarkConfig),
    Datagen(datagen::DatagenConfig),
    File(file::FileConfig),
    Kafka(kafka::KafkaSourceConfig),
}

/// The most rows a source's `batch.size` asks for in one batch.
pub const MAX_BATCH_ROWS: usize = 1 << 20;

/// What a source that `generates_watermarks` needs to generate them per split.
#[derive(Debug, Clone, Copy)]
pub struct SplitWatermarkSpec {
    /// The event-time column among the produced columns.
    pub time_column: usize,
    pub delay_nanos: i64,
    /// How long a split may go without records before it stops holding the watermark back.
    pub split_idle_timeout: Option<Duration>,
}

/// A source's definition with its options parsed and checked: the one place a source's WITH
/// options are read (at CREATE SOURCE, once per job attempt, and for a batch read).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The declared columns.
    schema: SchemaRef,
    /// What the connector produces: the declared columns but the computed ones, in declared order.
    records: SchemaRef,
    /// Each declared column: the connector's column, or an expression over the connector's columns.
    columns: Vec<SourceColumn>,
    connector: ConnectorConfig,
    /// `fail.at.row`: the task fails the first time it reaches this row (fault injection).
    fail_at_row: Option<u64>,
    /// `batch.linger`.
    linger: Duration,
}

impl SourceConfig {
    /// `roots`: where a file source's file may be.
    pub fn parse(def: &SourceDef, roots: &FileRoots) -> Result<Self> {
        let schema = schema_of(&def.columns)?;
        let record_columns: Vec<ColumnDef> = def
            .columns
            .iter()
            .filter(|c| !matches!(c.kind, ColumnKind::Computed { .. }))
            .cloned()
            .collect();
        let records = schema_of(&record_columns)?;
        let mut columns = Vec::with_capacity(def.columns.len());
        let mut record = 0;
        for column in &def.columns {
            columns.push(match &column.kind {
                ColumnKind::Computed { expr } => {
                    let (expr, _) = computed_column::compile(&column.name, expr, &records)?;
                    SourceColumn::Computed(expr, column.data_type()?)
                }
                ColumnKind::Physical | ColumnKind::Metadata { .. } => {
                    record += 1;
                    SourceColumn::Record(record - 1)
                }
            });
        }
        let mut options = def.options.clone();
        let fail_at_row = match options.remove(FAIL_AT_ROW) {
            Some(v) => Some(
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Error::invalid(format!("'{FAIL_AT_ROW}' must be a positive row number, not '{v}'")))?,
            ),
            None => None,
        };
        let linger = match options.remove(BATCH_LINGER) {
            Some(v) => {
                let linger = parse_duration(BATCH_LINGER, &v)?;
                if linger > Duration::from_secs(60) {
                    return Err(Error::invalid(format!("'{BATCH_LINGER}' is at most 60s, not '{v}'")));
                }
                linger
            }
            None => pacer::DEFAULT_LINGER,
        };
        let connector_kind = SourceConnector::parse(&def.connector)?;
        let upsert = connector_kind == SourceConnector::UpsertKafka;
        if upsert && def.primary_key.is_empty() {
            return Err(Error::invalid("an 'upsert-kafka' source needs a PRIMARY KEY: it is the record key"));
        }
        if !upsert && !def.primary_key.is_empty() {
            return Err(Error::invalid(format!(
                "a PRIMARY KEY is only for an 'upsert-kafka' source; every row of a '{}' source is an insert",
                def.connector
            )));
        }
        if !matches!(connector_kind, SourceConnector::Kafka | SourceConnector::UpsertKafka)
            && let Some(column) = record_columns.iter().find(|c| matches!(c.kind, ColumnKind::Metadata { .. }))
        {
            return Err(Error::invalid(format!(
                "column '{}': the {} connector has no METADATA columns",
                column.name, def.connector
            )));
        }
        let connector = match connector_kind {
            SourceConnector::Nexmark => ConnectorConfig::Nexmark(nexmark::NexmarkConfig::from_options(&options).map_err(Error::invalid)?),
            SourceConnector::Datagen => ConnectorConfig::Datagen(datagen::DatagenConfig::from_options(&options, &records)?),
            SourceConnector::File => ConnectorConfig::File(file::FileConfig::from_options(&options, roots)?),
            SourceConnector::Kafka => ConnectorConfig::Kafka(kafka::KafkaSourceConfig::from_options(&def.name, &options, &record_columns)?),
            SourceConnector::UpsertKafka => ConnectorConfig::Kafka(kafka::KafkaSourceConfig::from_upsert_options(
                &def.name,
                &options,
                &record_columns,
                &def.primary_key,
            )?),
        };
        Ok(SourceConfig {
            schema,
            records,
            columns,
            connector,
            fail_at_row,
            linger,
        })
    }

    /// What CREATE SOURCE checks beyond the options: the generator accepts the declared columns,
    /// the file can be read. (A Kafka source's broker and topic are looked up when a job starts:
    /// the broker may well be down while the DDL runs.)
    pub fn check(&self) -> Result<()> {
        match &self.connector {
            ConnectorConfig::Nexmark(config) => {
                nexmark::NexmarkGenerator::new(config.clone(), self.records.clone(), 0, 1).map_err(Error::invalid)?;
            }
            ConnectorConfig::Datagen(_) => {}
            ConnectorConfig::Kafka(config) => kafka_source::check_properties(config)?,
            ConnectorConfig::File(config) => config.check_readable()?,
        }
        Ok(())
    }

    /// Whether every subtask of the source ends by itself.
    pub fn is_bounded(&self) -> bool {
        match &self.connector {
            ConnectorConfig::Nexmark(config) => config.max_events.is_some(),
            ConnectorConfig::Datagen(config) => config.number_of_rows.is_some(),
            ConnectorConfig::File(config) => config.monitor_interval.is_none(),
            ConnectorConfig::Kafka(_) => false,
        }
    }

    /// Whether the source reads several independently ordered splits (Kafka partitions) and so
    /// generates its watermarks itself, per split (pass a `WatermarkSpec` to `open`), as Flink's
    /// sources do. Others leave watermarks to the `WatermarkAssigner` after them.
    pub fn generates_watermarks(&self) -> bool {
        matches!(self.connector, ConnectorConfig::Kafka(_))
    }

    /// How long a split may go without records before it stops holding the watermark back
    /// (`scan.watermark.idle-timeout`); also when the whole subtask counts as idle. Unset, the
    /// job's `table.exec.source.idle-timeout` serves for both, as Flink pushes it into the
    /// source's watermark strategy.
    pub fn idle_timeout(&self) -> Option<Duration> {
        match &self.connector {
            ConnectorConfig::Kafka(config) => config.idle_timeout,
            _ => None,
        }
    }

    /// Opens subtask `subtask` of `parallelism`, producing the declared columns `columns`.
    /// `paced` honours the source's rate option (off for batch reads). `failure_marker`: where a
    /// job notes that the `fail.at.row` failure happened, so it happens once; `None` disables it.
    /// `watermark` (sources that `generates_watermarks`): the event-time column among `columns`
    /// and the delay.
    pub fn open(
        &self,
        columns: &[usize],
        subtask: usize,
        parallelism: usize,
        paced: bool,
        failure_marker: Option<PathBuf>,
        watermark: Option<SplitWatermarkSpec>,
    ) -> Result<Box<dyn Source>> {
        let computed = columns
            .iter()
            .any(|c| matches!(self.columns.get(*c), Some(SourceColumn::Computed(..))));
        let mut source = if computed {
            // Computed columns may read any other column: the connector produces all of them.
            let all: Vec<usize> = (0..self.records.fields().len()).collect();
            let inner = self.open_connector(&all, subtask, parallelism, paced)?;
            let outputs = columns
                .iter()
                .map(|c| {
                    self.columns
                        .get(*c)
                        .cloned()
                        .ok_or_else(|| Error::internal(format!("source column #{c} does not exist")))
                })
                .collect::<Result<Vec<_>>>()?;
            Box::new(ComputedColumns {
                inner,
                outputs,
                schema: Arc::new(self.schema.project(columns)?),
            })
        } else {
            let records = columns
                .iter()
                .map(|c| match self.columns.get(*c) {
                    Some(SourceColumn::Record(r)) => Ok(*r),
                    _ => Err(Error::internal(format!("source column #{c} is not a connector column"))),
                })
                .collect::<Result<Vec<_>>>()?;
            self.open_connector(&records, subtask, parallelism, paced)?
        };
        if let (Some(watermark), true) = (watermark, self.generates_watermarks()) {
            source = Box::new(split_watermarks::SplitWatermarks::new(
                source,
                watermark.time_column,
                watermark.delay_nanos,
                watermark.split_idle_timeout,
            ));
        }
        Ok(match (self.fail_at_row, failure_marker) {
            (Some(row), Some(marker)) if !marker.exists() => Box::new(FailAtRow {
                inner: source,
                row,
                rows: 0,
                marker,
            }),
            _ => source,
        })
    }

    /// The connector's source producing its columns `columns` (indices into `records`).
    fn open_connector(&self, columns: &[usize], subtask: usize, parallelism: usize, paced: bool) -> Result<Box<dyn Source>> {
        let (full, linger) = (self.records.clone(), self.linger);
        Ok(match &self.connector {
            ConnectorConfig::Nexmark(config) => {
                let mut config = config.clone();
                // Rate-limited generation cuts small batches to pace smoothly; unpaced reads want big ones.
                config.rate_limited &= paced;
                let rate = config.rate_limited.then_some(config.events_per_second as f64 / parallelism as f64);
                let schema: SchemaRef = Arc::new(full.project(columns)?);
                let generator = nexmark::NexmarkGenerator::new(config, schema, subtask, parallelism).map_err(Error::invalid)?;
                Box::new(NexmarkSource {
                    generator,
                    pacer: pacer::Pacer::new(rate, linger),
                })
            }
            ConnectorConfig::Datagen(config) => Box::new(datagen::DatagenSource::new(
                config.clone(),
                full,
                columns.to_vec(),
                subtask,
                parallelism,
                paced,
                linger,
            )),
            ConnectorConfig::File(config) => Box::new(file::FileSource::open(config.clone(), full, columns, subtask, parallelism, linger)?),
            ConnectorConfig::Kafka(config) => Box::new(kafka_source::KafkaSource::open(
                config.clone(),
                full,
                columns,
                subtask,
                parallelism,
            )?),
        })
    }
}

/// Where a declared column of a source comes from.
#[derive(Debug, Clone)]
enum SourceColumn {
    /// The connector's column at this index of `SourceConfig::records`.
    Record(usize),
    /// Evaluated over the connector's columns (all of them, in `records` order), cast to the declared type.
    Computed(PhysicalExprRef, DataType),
}

/// Adds computed columns to what a connector produces.
struct ComputedColumns {
    /// Produces every connector column.
    inner: Box<dyn Source>,
    outputs: Vec<SourceColumn>,
    schema: SchemaRef,
}

impl ComputedColumns {
    fn compute(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        // An upsert source's row kinds stay after the columns.
        let (records, kinds) = split_row_kinds(batch)?;
        let records = &records;
        let arrays = self
            .outputs
            .iter()
            .map(|output| match output {
                SourceColumn::Record(r) => Ok(records.column(*r).clone()),
                SourceColumn::Computed(expr, data_type) => {
                    let values = expr.evaluate(records)?.into_array(records.num_rows())?;
                    Ok(cast(&values, data_type)?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = RecordBatch::try_new(self.schema.clone(), arrays)?;
        match kinds {
            Some(kinds) => with_row_kinds(&rows, kinds),
            None => Ok(rows),
        }
    }
}

/// The `Source` methods a wrapper around `self.inner` passes on unchanged (position, splits,
/// checkpoint completion); a wrapper writes only what it changes (`next_batch`, watermarks).
macro_rules! forward_source_to_inner {
    () => {
        fn position(&self) -> SourcePosition {
            self.inner.position()
        }

        fn seek(&mut self, position: &SourcePosition) -> Result<()> {
            self.inner.seek(position)
        }

        fn last_split(&self) -> Option<SplitId> {
            self.inner.last_split()
        }

        fn splits(&self) -> Vec<SplitId> {
            self.inner.splits()
        }

        fn has_no_input(&self) -> bool {
            self.inner.has_no_input()
        }

        fn checkpoint_completed(&mut self, position: &SourcePosition) {
            self.inner.checkpoint_completed(position)
        }

        fn take_skipped_records(&mut self) -> u64 {
            self.inner.take_skipped_records()
        }

        fn backlog(&self) -> Option<u64> {
            self.inner.backlog()
        }
    };
}
pub(crate) use forward_source_to_inner;

#[async_trait]
impl Source for ComputedColumns {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match self.inner.next_batch().await? {
            Some(records) => Ok(Some(self.compute(&records)?)),
            None => Ok(None),
        }
    }

    forward_source_to_inner!();
}

struct NexmarkSource {
    generator: nexmark::NexmarkGenerator,
    pacer: pacer::Pacer,
}

#[async_trait]
impl Source for NexmarkSource {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.generator.is_exhausted() {
            return Ok(None);
        }
        // Wait first, generate after: a barrier may drop this call while it waits.
        let events = self
            .pacer
            .next_batch_len(self.generator.events_passed(), self.generator.batch_span())
            .await;
        Ok(self.generator.next_batch_within(events))
    }

    fn position(&self) -> SourcePosition {
        rescale::GeneratorPosition {
            next: self.generator.position(),
            read_before: self.generator.read_before().cloned(),
        }
        .encode()
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<()> {
        let position = rescale::GeneratorPosition::decode(position)?;
        self.generator.seek(position.next);
        self.generator.set_read_before(position.read_before);
        self.pacer = self.pacer.resumed(0);
        Ok(())
    }
}

/// Fault injection (`fail.at.row`): fails the task once, when the source reaches the given row.
struct FailAtRow {
    inner: Box<dyn Source>,
    row: u64,
    rows: u64,
    marker: PathBuf,
}

#[async_trait]
impl Source for FailAtRow {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let batch = self.inner.next_batch().await?;
        if let Some(batch) = &batch {
            self.rows += batch.num_rows() as u64;
            if self.rows >= self.row && !self.marker.exists() {
                if let Some(dir) = self.marker.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&self.marker, b"failed once")?;
                return Err(Error::user(
                    crate::error::UserErrorKind::Other,
                    format!("injected failure at row {} (fail.at.row)", self.row),
                ));
            }
        }
        Ok(batch)
    }

    forward_source_to_inner!();

    fn take_watermarks(&mut self) -> Vec<(usize, EventTime)> {
        self.inner.take_watermarks()
    }
}

/// Which sink subtask of which job writes, for sinks that name their output after it.
pub struct SinkSubtask<'a> {
    pub job: &'a str,
    pub subtask: usize,
    /// The directories a `filesystem` table may write in.
    pub roots: &'a FileRoots,
}

/// Opens one sink subtask writing into `table`.
pub fn open_sink(
    table: &TableDef,
    mode: SinkMode,
    store: &Arc<table_store::TableStore>,
    delivery: table_store::Delivery,
    at: SinkSubtask,
) -> Result<Box<dyn Sink>> {
    Ok(match table.connector {
        TableConnector::Stored => Box::new(table_store::StoredTableSink::new(store.clone(), table, mode, delivery)?),
        TableConnector::Blackhole => Box::new(print::BlackholeSink),
        TableConnector::Print => Box::new(print::PrintSink::new(&table.name)),
        TableConnector::Kafka | TableConnector::UpsertKafka => {
            let config = kafka_sink::KafkaSinkConfig::parse(table)?;
            match (config.delivery, delivery) {
                (kafka_sink::DeliveryGuarantee::ExactlyOnce, table_store::Delivery::Staged(staging)) => {
                    Box::new(kafka_sink::StagedKafkaSink::new(staging))
                }
                (kafka_sink::DeliveryGuarantee::ExactlyOnce, _) => {
                    return Err(Error::invalid(format!(
                        "table '{}' is written 'exactly-once', which needs checkpointing",
                        table.name
                    )));
                }
                _ => Box::new(kafka_sink::KafkaSink::open(config)?),
            }
        }
        TableConnector::Filesystem => match delivery {
            table_store::Delivery::Staged(staging) => Box::new(filesystem_sink::FileSystemSink::staged(staging)),
            table_store::Delivery::Direct => {
                let config = Arc::new(filesystem_sink::FileSinkConfig::parse(table, at.roots)?);
                Box::new(filesystem_sink::FileSystemSink::direct(config, at.job, at.subtask)?)
            }
            table_store::Delivery::Done => Box::new(print::BlackholeSink),
        },
    })
}

pub fn table_schema(table: &TableDef) -> Result<Arc<Schema>> {
    schema_of(&table.columns)
}
