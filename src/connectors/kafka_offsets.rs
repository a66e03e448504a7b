//! Where a Kafka source subtask starts and stops, asked of the brokers (blocking calls, each within
//! `BROKER_TIMEOUT`, run off the async threads by `KafkaSource`): the partitions of its topics,
//! each partition's first offset (restored, or by `scan.startup.mode`) and, when bounded, its stop
//! offset (`scan.bounded.mode`).

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::connectors::kafka::{BoundedMode, KafkaPosition, KafkaSourceConfig, StartupMode, Topics, client_error};
use crate::error::{Error, Result, UserErrorKind};

/// How long a metadata or offset request to the brokers may take before the attempt fails (and
/// the restart strategy decides): a broker that is down at start must not hang the job.
const BROKER_TIMEOUT: Duration = Duration::from_secs(20);

/// A librdkafka error of the source, as a user error (a bad property, or the brokers).
pub(crate) fn kafka_error(config: &KafkaSourceConfig, what: &str, error: KafkaError) -> Error {
    client_error(&format!("Kafka source '{}'", config.source), what, error)
}

/// Every partition of the source's topics (blocking). `initial`: a named topic that does not
/// exist fails the attempt (later, during discovery, it is only logged).
pub(crate) fn partitions(config: &KafkaSourceConfig, consumer: &StreamConsumer, initial: bool) -> Result<Vec<(String, i32)>> {
    let lookup = |topic: Option<&str>| {
        consumer.fetch_metadata(topic, BROKER_TIMEOUT).map_err(|e| {
            kafka_error(
                config,
                &format!(
                    "cannot reach the brokers ({}) within {BROKER_TIMEOUT:?}",
                    config.properties.get("bootstrap.servers").map_or("", String::as_str)
                ),
                e,
            )
        })
    };
    let mut found = Vec::new();
    let mut add = |metadata: &rdkafka::metadata::Metadata, missing_fails: bool| -> Result<()> {
        for topic in metadata.topics() {
            if !config.topics.matches(topic.name()) {
                continue;
            }
            if let Some(error) = topic.error() {
                let code = RDKafkaErrorCode::from(error);
                if missing_fails {
                    return Err(Error::user(
                        UserErrorKind::UndefinedObject,
                        format!("Kafka source '{}': topic '{}' cannot be read: {code}", config.source, topic.name()),
                    ));
                }
                continue;
            }
            found.extend(topic.partitions().iter().map(|p| (topic.name().to_string(), p.id())));
        }
        Ok(())
    };
    match &config.topics {
        Topics::Named(names) => {
            for name in names {
                add(&lookup(Some(name))?, initial)?;
            }
        }
        Topics::Pattern(_) => add(&lookup(None)?, false)?,
    }
    found.sort();
    Ok(found)
}

/// Offset lookups at the brokers (blocking, each within `BROKER_TIMEOUT`).
struct OffsetLookup<'a> {
    config: &'a KafkaSourceConfig,
    consumer: &'a StreamConsumer,
}

impl OffsetLookup<'_> {
    fn failed(&self, what: &str, e: KafkaError) -> Error {
        kafka_error(self.config, what, e)
    }

    /// (earliest, end) offsets of a partition.
    fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(topic, partition, BROKER_TIMEOUT)
            .map_err(|e| self.failed(&format!("cannot read the offsets of topic '{topic}' partition {partition}"), e))
    }

    /// The first offset at or after each time (epoch milliseconds); the end where no record is that late.
    fn at_times(&self, wanted: &[(String, i32, i64)]) -> Result<Vec<i64>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut list = TopicPartitionList::new();
        for (topic, partition, millis) in wanted {
            list.add_partition_offset(topic, *partition, Offset::Offset(*millis))
                .map_err(|e| self.failed("cannot look up offsets by time", e))?;
        }
        let found = self
            .consumer
            .offsets_for_times(list, BROKER_TIMEOUT)
            .map_err(|e| self.failed("cannot look up offsets by time", e))?;
        wanted
            .iter()
            .map(
                |(topic, partition, _)| match found.find_partition(topic, *partition).map(|e| e.offset()) {
                    Some(Offset::Offset(n)) => Ok(n),
                    _ => Ok(self.watermarks(topic, *partition)?.1),
                },
            )
            .collect()
    }

    /// The group's committed offset of each partition, if it has one.
    fn committed(&self, wanted: &[(String, i32)]) -> Result<Vec<Option<i64>>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut list = TopicPartitionList::new();
        for (topic, partition) in wanted {
            list.add_partition(topic, *partition);
        }
        let committed = self
            .consumer
            .committed_offsets(list, BROKER_TIMEOUT)
            .map_err(|e| self.failed("cannot read the group's committed offsets", e))?;
        Ok(wanted
            .iter()
            .map(
                |(topic, partition)| match committed.find_partition(topic, *partition).map(|e| e.offset()) {
                    Some(Offset::Offset(n)) => Some(n),
                    _ => None,
                },
            )
            .collect())
    }
}

/// The next offset of each partition: a restored one, else by the startup mode (`initial`) or the
/// earliest (partitions found later, as Flink does).
pub(crate) fn start_offsets(
    config: &KafkaSourceConfig,
    consumer: &StreamConsumer,
    restored: &KafkaPosition,
    partitions: Vec<(String, i32)>,
    initial: bool,
) -> Result<Vec<(String, i32, i64)>> {
    let lookup = OffsetLookup { config, consumer };
    let mut resolved = Vec::with_capacity(partitions.len());
    let mut by_group = Vec::new();
    let mut by_time = Vec::new();
    for (topic, partition) in partitions {
        if let Some(next) = restored.get(&topic, partition) {
            resolved.push((topic, partition, next));
            continue;
        }
        let mode = if initial { &config.startup } else { &StartupMode::EarliestOffset };
        match mode {
            StartupMode::EarliestOffset => {
                let (low, _) = lookup.watermarks(&topic, partition)?;
                resolved.push((topic, partition, low));
            }
            StartupMode::LatestOffset => {
                let (_, high) = lookup.watermarks(&topic, partition)?;
                resolved.push((topic, partition, high));
            }
            StartupMode::SpecificOffsets(offsets) => match offsets.get(&partition) {
                Some(next) => resolved.push((topic, partition, *next)),
                None => by_group.push((topic, partition)),
            },
            StartupMode::GroupOffsets => by_group.push((topic, partition)),
            StartupMode::Timestamp(millis) => by_time.push((topic, partition, *millis)),
        }
    }
    for ((topic, partition, _), next) in by_time.iter().zip(lookup.at_times(&by_time)?) {
        resolved.push((topic.clone(), *partition, next));
    }
    let reset = config.properties.get("auto.offset.reset").map(|r| r.to_ascii_lowercase());
    for ((topic, partition), committed) in by_group.iter().zip(lookup.committed(&by_group)?) {
        let next = match (committed, reset.as_deref()) {
            (Some(next), _) => next,
            (None, Some("earliest" | "smallest" | "beginning")) => lookup.watermarks(topic, *partition)?.0,
            (None, Some("error" | "none")) => {
                return Err(Error::user(
                    UserErrorKind::InvalidState,
                    format!(
                        "Kafka source '{}': group '{}' has no committed offset for topic '{topic}' partition {partition} and 'properties.auto.offset.reset' is '{}'",
                        config.source,
                        config.group().unwrap_or(""),
                        reset.as_deref().unwrap_or("")
                    ),
                ));
            }
            // librdkafka's default: the latest offset.
            (None, _) => lookup.watermarks(topic, *partition)?.1,
        };
        resolved.push((topic.clone(), *partition, next));
    }
    Ok(resolved)
}

/// Where a bounded source stops in each partition (`None` for all when unbounded): a restored stop,
/// else by `scan.bounded.mode`; never before the partition's start.
pub(crate) fn stop_offsets(
    config: &KafkaSourceConfig,
    consumer: &StreamConsumer,
    restored: &KafkaPosition,
    starts: &[(String, i32, i64)],
) -> Result<Vec<Option<i64>>> {
    let Some(mode) = &config.bounded else {
        return Ok(vec![None; starts.len()]);
    };
    let lookup = OffsetLookup { config, consumer };
    let wanted: Vec<(String, i32)> = starts.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    let by_mode: Vec<Option<i64>> = match mode {
        BoundedMode::LatestOffset => vec![None; starts.len()],
        BoundedMode::GroupOffsets => lookup.committed(&wanted)?,
        BoundedMode::SpecificOffsets(offsets) => wanted.iter().map(|(_, p)| offsets.get(p).copied()).collect(),
        BoundedMode::Timestamp(millis) => {
            let at: Vec<(String, i32, i64)> = wanted.iter().map(|(t, p)| (t.clone(), *p, *millis)).collect();
            lookup.at_times(&at)?.into_iter().map(Some).collect()
        }
    };
    starts
        .iter()
        .zip(by_mode)
        .map(|((topic, partition, next), by_mode)| {
            let stop = match (restored.stop(topic, *partition), by_mode) {
                (Some(stop), _) | (None, Some(stop)) => stop,
                (None, None) => lookup.watermarks(topic, *partition)?.1,
            };
            Ok(Some(stop.max(*next)))
        })
        .collect()
}
