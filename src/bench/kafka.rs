//! `weir bench query --kafka BROKERS`: the query's bids come from a 4-partition Kafka topic and its
//! results go to a topic through an exactly-once sink. The run goes: the query from the generator
//! into a topic (the baseline), then the same bids are loaded into the input topic by a Weir job,
//! then the query reads that topic (bounded at its end, so the job finishes) into a second topic.
//! The topics are created here and deleted at the end.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::engine::session::Session;
use crate::error::{Error, Result};

/// Partitions of the input topic (the set-up: several partitions per source subtask).
pub const INPUT_PARTITIONS: i32 = 4;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The bid columns, as the sources declare them.
const BID_COLUMNS: &str = "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, \
     date_time TIMESTAMP(3), extra VARCHAR";

/// The topics of one benchmark run, named after the process so runs do not meet.
pub struct BenchTopics {
    pub bootstrap: String,
    pub input: String,
    /// Where the generator baseline and the Kafka run write their results.
    pub baseline_output: String,
    pub output: String,
    admin: AdminClient<DefaultClientContext>,
}

impl BenchTopics {
    pub async fn create(bootstrap: &str) -> Result<Self> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .map_err(|e| Error::invalid(format!("cannot create a Kafka admin client for {bootstrap}: {e}")))?;
        let prefix = format!("weir-bench-{}", std::process::id());
        let topics = BenchTopics {
            bootstrap: bootstrap.to_string(),
            input: format!("{prefix}-bids"),
            baseline_output: format!("{prefix}-baseline-out"),
            output: format!("{prefix}-out"),
            admin,
        };
        // Records keep their event times as timestamps; Nexmark's are years old, so retention is off.
        let config = [("retention.ms", "-1")];
        let new = |name, partitions| {
            let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
            for (k, v) in config {
                topic = topic.set(k, v);
            }
            topic
        };
        let results = topics
            .admin
            .create_topics(
                &[
                    new(&topics.input, INPUT_PARTITIONS),
                    new(&topics.baseline_output, INPUT_PARTITIONS),
                    new(&topics.output, INPUT_PARTITIONS),
                ],
                &AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)),
            )
            .await
            .map_err(|e| Error::invalid(format!("cannot create the benchmark's topics at {bootstrap}: {e}")))?;
        for result in results {
            if let Err((topic, code)) = result {
                return Err(Error::invalid(format!("cannot create topic {topic} at {bootstrap}: {code}")));
            }
        }
        Ok(topics)
    }

    pub async fn delete(&self) {
        let names = [self.input.as_str(), self.baseline_output.as_str(), self.output.as_str()];
        if let Err(e) = self
            .admin
            .delete_topics(&names, &AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)))
            .await
        {
            eprintln!("warning: the benchmark's topics {names:?} were not deleted: {e}");
        }
    }

    /// The `bid` source over the input topic, from its start to its end at the time the job starts.
    pub fn source_sql(&self) -> String {
        format!(
            "CREATE SOURCE bid ({BID_COLUMNS}, WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) \
             WITH (connector = 'kafka', topic = '{}', 'properties.bootstrap.servers' = '{}', format = 'json', \
                   'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset')",
            self.input,
            self.bootstrap.replace('\'', "''")
        )
    }

    /// The options of a result table in `topic` with an exactly-once sink.
    pub fn sink_options(&self, topic: &str) -> Vec<(String, String)> {
        [
            ("connector", "kafka"),
            ("topic", topic),
            ("properties.bootstrap.servers", &self.bootstrap),
            ("format", "json"),
            ("sink.delivery-guarantee", "exactly-once"),
            ("sink.transactional-id-prefix", topic),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Writes the bids of `generator` (CREATE SOURCE statements naming `bid`) into the input topic
    /// with a Weir job (at-least-once: every record acknowledged at the end).
    pub async fn load(&self, session: &Session, generator: &str) -> Result<()> {
        let started = Instant::now();
        session
            .execute(&format!(
                "{generator}
                 CREATE TABLE bench_input ({BID_COLUMNS}) WITH (connector = 'kafka', topic = '{}',
                   'properties.bootstrap.servers' = '{}', format = 'json', 'sink.delivery-guarantee' = 'at-least-once');
                 CREATE JOB bench_load AS INSERT INTO bench_input SELECT * FROM bid;
                 WAIT JOB bench_load;",
                self.input,
                self.bootstrap.replace('\'', "''")
            ))
            .await?;
        let rows = super::query_rows(session, "SELECT status, error, rows_in FROM weir_jobs WHERE name = 'bench_load'").await?;
        match rows.first() {
            Some(row) if row[0] == "FINISHED" => {
                eprintln!(
                    "loaded {} bids into topic {} ({INPUT_PARTITIONS} partitions) in {:.1}s",
                    row[2],
                    self.input,
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Some(row) => Err(Error::internal(format!("loading the input topic ended {}: {}", row[0], row[1]))),
            None => Err(Error::internal("the loading job vanished")),
        }
    }
}
