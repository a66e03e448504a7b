#!/usr/bin/env python3
"""Kafka end to end against a real broker (noida-db, see kafka_broker.py) and `weir serve`:

  python3 tests/verify/kafka_pipeline.py --weir target/release/weir [--only NAME]

Each check starts its own broker and Weir (a fresh data dir), drives Weir over psycopg as a user
would, and compares what lands in a result table with the same computation done here in Python:
- crashes: 200k JSON bids with out-of-order times in 4 partitions, a job at parallelism 2 with
  500 ms checkpoints counting bids per auction and 1 s TUMBLE window (event time from the epoch
  milliseconds by a computed column), while Weir is SIGKILLed 3 times and restarted: every window
  exactly once;
- savepoint: STOP JOB WITH SAVEPOINT half-way, RESTORE at parallelism 3: nothing lost or repeated;
- broker restart: the broker is killed and comes back mid-job: the job goes on, results exact;
- idle topic: checkpoints keep completing while nothing arrives, and STOP JOB returns;
- bad input: a malformed record fails the job naming topic, partition and offset, or is skipped
  with 'json.ignore-parse-errors'; a missing topic and a broker that is down fail the job with
  the reason (restart strategy 'none'), never hang;
- sinks: a HOP aggregate into a Kafka topic 'exactly-once' while Weir is SIGKILLed 3 times: a
  read_committed reader sees every result row exactly once; 'at-least-once': none missing (duplicates
  counted); an updating aggregate into 'upsert-kafka': the latest record per key is the final value;
  that topic, with tombstones added, read back by an 'upsert-kafka' source into a keyed table (the
  live keys exactly) and into an aggregate over it (retractions of every key's older record);
- bounded: 'scan.bounded.mode' = 'latest-offset' over a transactional topic: the job finishes, exact;
- backlog: `weir serve --http`'s /metrics shows the source's records behind the log end while a
  slow sink holds the job back, then 0 once the source has read the topic.
Needs the venv (noida-db, confluent-kafka, psycopg); skips loudly when they cannot be installed.
"""

import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_broker  # noqa: E402
from psycopg_check import ensure_psycopg  # noqa: E402
from weir_server import WeirServer as Weir, check_arguments, run_checks  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BASE_MS = 1_704_067_200_000  # 2024-01-01 00:00:00 UTC
PARTITIONS = 4
WINDOW_MS = 1000
# Times within a partition are out of order by up to this much; the watermark allows more.
JITTER_MS = 2000
WATERMARK_DELAY_S = 3


class Failure(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Data and expectation

def bids(count, seed, start=0):
    """`count` bids as (partition, value bytes, event ms); auctions partitioned by auction % 4, times
    rising 5 ms per bid with up to JITTER_MS of disorder."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + count):
        auction = rng.randrange(200)
        ts = BASE_MS + i * 5 - rng.randrange(JITTER_MS)
        value = json.dumps({"auction": auction, "bidder": rng.randrange(10_000), "price": rng.randrange(1, 10_000), "ts": ts})
        out.append((auction % PARTITIONS, value.encode(), ts))
    return out


def expected_windows(records):
    windows = Counter()
    totals = Counter()
    for _, value, ts in records:
        bid = json.loads(value)
        key = (bid["auction"], (ts // WINDOW_MS) * WINDOW_MS)
        windows[key] += 1
        totals[key] += bid["price"]
    return {k: (windows[k], totals[k]) for k in windows}


def produce_bids(bootstrap, topic, records):
    kafka_broker.produce(bootstrap, topic, [(p, None, v, ts, None) for p, v, ts in records])


def produce_with_kills(broker, weir, records, rng, kills, chunks=20):
    """Produces `records` into "bids" in `chunks` parts; after `kills` random parts (never the first
    two) Weir is SIGKILLed at a random moment and started again."""
    size = len(records) // chunks
    kill_at = sorted(rng.sample(range(2, chunks), kills))
    for c in range(chunks):
        produce_bids(broker.bootstrap, "bids", records[c * size:(c + 1) * size if c < chunks - 1 else len(records)])
        if c in kill_at:
            time.sleep(rng.uniform(0.1, 1.5))
            weir.kill()
            weir.start()


def flush_windows(bootstrap, topic, last_ms, partitions=range(PARTITIONS)):
    """A bid far past the data in every partition: each partition's watermark passes every window.
    Auction -1 is filtered out by the job."""
    ts = last_ms + 3_600_000
    value = json.dumps({"auction": -1, "bidder": 0, "price": 0, "ts": ts}).encode()
    kafka_broker.produce(bootstrap, topic, [(p, None, value, ts, None) for p in partitions])


SOURCE = """CREATE SOURCE bids (auction BIGINT, bidder BIGINT, price BIGINT, ts BIGINT,
    part INT METADATA FROM 'partition', off BIGINT METADATA FROM 'offset',
    et AS TO_TIMESTAMP_LTZ(ts, 3), WATERMARK FOR et AS et - INTERVAL '{delay}' SECOND)
  WITH (connector = 'kafka', topic = '{topic}', 'properties.bootstrap.servers' = '{bootstrap}',
        'properties.group.id' = 'weir-test', 'scan.startup.mode' = 'earliest-offset', format = 'json'{extra})"""

TABLE = "CREATE TABLE per_window (auction BIGINT, window_start TIMESTAMP, bids BIGINT, total BIGINT, PRIMARY KEY (auction, window_start))"

JOB = """CREATE JOB counts WITH ('parallelism' = '{parallelism}', 'execution.checkpointing.interval' = '500ms'{extra}) AS
  INSERT INTO per_window SELECT auction, window_start, COUNT(*), SUM(price)
  FROM TUMBLE(bids, et, INTERVAL '1' SECOND) WHERE auction >= 0 GROUP BY auction, window_start"""


def declare(weir, bootstrap, topic, parallelism=2, source_extra="", job_extra=""):
    weir.sql(SOURCE.format(delay=WATERMARK_DELAY_S, topic=topic, bootstrap=bootstrap, extra=source_extra))
    weir.sql(TABLE)
    weir.sql(JOB.format(parallelism=parallelism, extra=job_extra))


def result_rows(weir):
    rows = weir.sql("SELECT auction, CAST(EXTRACT(EPOCH FROM window_start) * 1000 AS BIGINT), bids, total FROM per_window")
    return {(a, ws): (n, t) for a, ws, n, t in rows}


def wait_for(weir, expected, timeout_s, what):
    """Polls the result table until it equals `expected`; raises with the difference otherwise."""
    deadline = time.monotonic() + timeout_s
    got = {}
    while time.monotonic() < deadline:
        try:
            got = result_rows(weir)
        except Exception as e:  # a restarting server
            log(f"  (query failed: {e})")
        if got == expected:
            return
        time.sleep(0.5)
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    wrong = [(k, got[k], expected[k]) for k in expected if k in got and got[k] != expected[k]]
    status = weir.sql("SELECT status, error FROM weir_jobs")
    raise Failure(f"{what}: {len(got)} rows, expected {len(expected)}: {len(missing)} missing {missing[:3]}, "
                  f"{len(extra)} unexpected {extra[:3]}, {len(wrong)} wrong {wrong[:3]}; jobs {status}")


def job_status(weir, job="counts"):
    rows = weir.sql("SELECT status, error FROM weir_jobs WHERE name = %s", (job,))
    return rows[0] if rows else (None, None)


def wait_status(weir, wanted, timeout_s, job="counts"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, error = job_status(weir, job)
        if status in wanted:
            return status, error
        time.sleep(0.2)
    raise Failure(f"job {job} did not reach {wanted} within {timeout_s} s: {job_status(weir, job)}")


# ------------------------------------------------------------------------------------------------
# Checks

def check_crashes(weir_binary, work, seed=3, total=200_000, kills=3):
    rng = random.Random(seed)
    records = bids(total, seed)
    with bids_pipeline(weir_binary, work, "crashes", counts_job=True) as (broker, weir):
        produce_with_kills(broker, weir, records, rng, kills)
        flush_windows(broker.bootstrap, "bids", BASE_MS + total * 5)
        expected = expected_windows(records)
        wait_for(weir, expected, 120, "after 3 crashes")
        restarts = weir.sql("SELECT status, restarts FROM weir_jobs WHERE name = 'counts'")
        return f"{total} bids, {len(expected)} windows exact after {kills} SIGKILLs; job {restarts}"


def check_savepoint_rescale(weir_binary, work, seed=5, total=60_000):
    records = bids(total, seed)
    half = total // 2
    with bids_pipeline(weir_binary, work, "savepoint", counts_job=True) as (broker, weir):
        produce_bids(broker.bootstrap, "bids", records[:half])
        time.sleep(2)
        weir.sql("STOP JOB counts WITH SAVEPOINT")
        saved = weir.sql("SELECT name FROM weir_savepoints")
        if not saved:
            raise Failure("no savepoint after STOP JOB WITH SAVEPOINT")
        produce_bids(broker.bootstrap, "bids", records[half:])
        weir.sql(f"RESTORE JOB counts FROM SAVEPOINT {saved[-1][0]} WITH ('parallelism' = '3')")
        flush_windows(broker.bootstrap, "bids", BASE_MS + total * 5)
        expected = expected_windows(records)
        wait_for(weir, expected, 90, "after a savepoint and a restore at parallelism 3")
        return f"{total} bids, {len(expected)} windows exact across STOP WITH SAVEPOINT and RESTORE 2 -> 3"


def check_broker_restart(weir_binary, work, seed=9, total=40_000):
    records = bids(total, seed)
    half = total // 2
    with bids_pipeline(weir_binary, work, "broker-restart", counts_job=True) as (broker, weir):
        produce_bids(broker.bootstrap, "bids", records[:half])
        time.sleep(1.5)
        broker.wait_saved()
        broker.kill()
        time.sleep(3)
        broker.restart()
        produce_bids(broker.bootstrap, "bids", records[half:])
        flush_windows(broker.bootstrap, "bids", BASE_MS + total * 5)
        expected = expected_windows(records)
        wait_for(weir, expected, 120, "after the broker went down and came back")
        return f"{total} bids, {len(expected)} windows exact with the broker killed for 3 s mid-job"


def check_idle_topic(weir_binary, work):
    with kafka_broker.Broker() as broker:
        kafka_broker.create_topic(broker.bootstrap, "quiet", PARTITIONS)
        weir = Weir(weir_binary, os.path.join(work, "idle")).start()
        try:
            declare(weir, broker.bootstrap, "quiet")
            wait_status(weir, {"RUNNING"}, 30)
            time.sleep(1)
            first = len(weir.sql("SHOW CHECKPOINTS FOR JOB counts"))
            time.sleep(3)
            later = len(weir.sql("SHOW CHECKPOINTS FOR JOB counts"))
            if later < first + 3:
                raise Failure(f"checkpoints stalled on an idle topic: {first} then {later} after 3 s")
            started = time.monotonic()
            weir.sql("STOP JOB counts")
            took = time.monotonic() - started
            status, error = job_status(weir)
            if status != "STOPPED":
                raise Failure(f"STOP JOB on an idle topic left the job {status}: {error}")
            return f"{later - first} checkpoints in 3 s on an idle topic; STOP JOB returned in {took:.2f} s"
        finally:
            weir.kill()


def check_idle_partition(weir_binary, work, seed=29, total=20_000):
    """Partition 3 never receives a record. With the job's table.exec.source.idle-timeout (and no
    scan.watermark.idle-timeout) it stops holding the watermark back, as in Flink, so windows fire."""
    records = [r for r in bids(total, seed) if r[0] != 3]
    with kafka_broker.Broker() as broker:
        kafka_broker.create_topic(broker.bootstrap, "sparse", PARTITIONS)
        produce_bids(broker.bootstrap, "sparse", records)
        flush_windows(broker.bootstrap, "sparse", BASE_MS + total * 5, partitions=range(3))
        weir = Weir(weir_binary, os.path.join(work, "idle-partition")).start()
        try:
            declare(weir, broker.bootstrap, "sparse", parallelism=1, job_extra=", 'table.exec.source.idle-timeout' = '1s'")
            expected = expected_windows(records)
            wait_for(weir, expected, 60, "with partition 3 idle")
            return f"partition 3 empty: {len(expected)} windows exact with table.exec.source.idle-timeout = 1s"
        finally:
            weir.kill()


def check_bad_input(weir_binary, work):
    results = []
    with kafka_broker.Broker() as broker:
        kafka_broker.create_topic(broker.bootstrap, "mixed", PARTITIONS)
        good = bids(400, 11)
        produce_bids(broker.bootstrap, "mixed", good[:100])
        # Partition 1 gets a record that is not JSON; the offset is the broker's.
        [(partition, offset)] = kafka_broker.produce(broker.bootstrap, "mixed", [(1, None, b"{not json", BASE_MS, None)])
        produce_bids(broker.bootstrap, "mixed", good[100:])
        flush_windows(broker.bootstrap, "mixed", BASE_MS + 400 * 5)

        weir = Weir(weir_binary, os.path.join(work, "bad")).start()
        try:
            declare(weir, broker.bootstrap, "mixed", job_extra=", 'restart-strategy.type' = 'none'")
            status, error = wait_status(weir, {"FAILED"}, 60)
            wanted = f"topic 'mixed' partition {partition} at offset {offset}"
            if wanted not in (error or ""):
                raise Failure(f"a malformed record: the error does not say '{wanted}': {error}")
            results.append(f"malformed record -> FAILED: {error[:160]}")
            weir.sql("DROP JOB counts")
            weir.sql("DROP TABLE per_window")
            weir.sql("DROP SOURCE bids")
            declare(weir, broker.bootstrap, "mixed", source_extra=", 'json.ignore-parse-errors' = 'true'")
            wait_for(weir, expected_windows(good), 60, "skipping the malformed record")
            # The task counts a skip with the next batch or barrier of its subtask.
            deadline, skipped = time.monotonic() + 10, None
            while time.monotonic() < deadline and skipped != 1:
                skipped = weir.sql("SELECT records_skipped FROM weir_jobs WHERE name = 'counts'")[0][0]
                time.sleep(0.2)
            if skipped != 1:
                raise Failure(f"SHOW JOBS counts {skipped} skipped records, expected 1")
            results.append("with json.ignore-parse-errors the other 400 bids are exact, records_skipped = 1")
            weir.sql("DROP JOB counts")
            weir.sql("DROP TABLE per_window")
            weir.sql("DROP SOURCE bids")

            declare(weir, broker.bootstrap, "no_such_topic", job_extra=", 'restart-strategy.type' = 'none'")
            status, error = wait_status(weir, {"FAILED"}, 60)
            if "no_such_topic" not in (error or ""):
                raise Failure(f"a missing topic: the error does not name it: {error}")
            results.append(f"missing topic -> FAILED: {error[:160]}")
            weir.sql("DROP JOB counts")
            weir.sql("DROP TABLE per_window")
            weir.sql("DROP SOURCE bids")

            closed = kafka_broker._free_port()
            started = time.monotonic()
            declare(weir, f"127.0.0.1:{closed}", "bids", job_extra=", 'restart-strategy.type' = 'none'")
            status, error = wait_status(weir, {"FAILED"}, 90)
            if "cannot reach the brokers" not in (error or ""):
                raise Failure(f"a broker that is down: unexpected error {error}")
            results.append(f"broker down -> FAILED after {time.monotonic() - started:.1f} s: {error[:120]}")
            return "; ".join(results)
        finally:
            weir.kill()


def expected_hop(records):
    """COUNT and SUM(price) per auction and HOP window (1 s slide, 2 s size), by window start ms."""
    out = Counter()
    totals = Counter()
    for _, value, ts in records:
        bid = json.loads(value)
        first = (ts // WINDOW_MS) * WINDOW_MS
        for start in (first - WINDOW_MS, first):
            out[(bid["auction"], start)] += 1
            totals[(bid["auction"], start)] += bid["price"]
    return {k: (out[k], totals[k]) for k in out}


SINK = """CREATE TABLE hop_out (auction BIGINT, ws BIGINT, bids BIGINT, total BIGINT)
  WITH (connector = 'kafka', topic = 'hop_out', 'properties.bootstrap.servers' = '{bootstrap}', format = 'json',
        'sink.delivery-guarantee' = '{delivery}', 'sink.transactional-id-prefix' = 'hop-{delivery}')"""

HOP_JOB = """CREATE JOB hops WITH ('parallelism' = '2', 'execution.checkpointing.interval' = '500ms') AS
  INSERT INTO hop_out SELECT auction, CAST(EXTRACT(EPOCH FROM window_start) * 1000 AS BIGINT), COUNT(*), SUM(price)
  FROM HOP(bids, et, INTERVAL '1' SECOND, INTERVAL '2' SECOND) WHERE auction >= 0 GROUP BY auction, window_start"""


def topic_rows(bootstrap, topic, isolation):
    """The sink's records as a Counter of (auction, ws, bids, total)."""
    records = kafka_broker.read_records(bootstrap, topic, isolation=isolation)
    return Counter(tuple(json.loads(r["value"])[c] for c in ("auction", "ws", "bids", "total")) for r in records)


@contextlib.contextmanager
def bids_pipeline(weir_binary, work, name, outputs=None, counts_job=False):
    """A broker with the 4-partition "bids" topic and `outputs` (topic -> partitions), and Weir
    (data dir `name`) with the bids source declared, and with `counts_job` also the per_window
    table and the counting job (`declare`); Weir is killed at the end."""
    with kafka_broker.Broker() as broker:
        kafka_broker.create_topic(broker.bootstrap, "bids", PARTITIONS)
        for topic, partitions in (outputs or {}).items():
            kafka_broker.create_topic(broker.bootstrap, topic, partitions)
        weir = Weir(weir_binary, os.path.join(work, name)).start()
        try:
            if counts_job:
                declare(weir, broker.bootstrap, "bids")
            else:
                weir.sql(SOURCE.format(delay=WATERMARK_DELAY_S, topic="bids", bootstrap=broker.bootstrap, extra=""))
            yield broker, weir
        finally:
            weir.kill()


def check_sink(weir_binary, work, delivery, seed=13, total=200_000, kills=3):
    rng = random.Random(seed)
    records = bids(total, seed)
    expected = Counter((a, ws, n, t) for (a, ws), (n, t) in expected_hop(records).items())
    with bids_pipeline(weir_binary, work, f"sink-{delivery}", {"hop_out": 3}) as (broker, weir):
        weir.sql(SINK.format(bootstrap=broker.bootstrap, delivery=delivery))
        weir.sql(HOP_JOB)
        produce_with_kills(broker, weir, records, rng, kills)
        flush_windows(broker.bootstrap, "bids", BASE_MS + total * 5)
        isolation = "read_committed" if delivery == "exactly-once" else "read_uncommitted"
        deadline = time.monotonic() + 120
        while True:
            got = topic_rows(broker.bootstrap, "hop_out", isolation)
            if set(got) >= set(expected) or time.monotonic() > deadline:
                break
            time.sleep(1)
        missing = set(expected) - set(got)
        unexpected = set(got) - set(expected)
        duplicated = sum(n - 1 for n in got.values() if n > 1)
        if missing or unexpected:
            raise Failure(f"{delivery}: {len(missing)} result rows missing {sorted(missing)[:3]}, "
                          f"{len(unexpected)} unexpected {sorted(unexpected)[:3]}; jobs {weir.sql('SELECT status, error FROM weir_jobs')}")
        if delivery == "exactly-once" and duplicated:
            raise Failure(f"exactly-once: {duplicated} duplicated result rows in the topic")
        return (f"{total} bids -> {len(expected)} HOP rows in the topic after {kills} SIGKILLs: none missing, "
                f"{duplicated} duplicates ({isolation})")


def check_bounded(weir_binary, work, seed=23, total=40_000):
    """An exactly-once HOP job fills a transactional topic; a second job reads that topic with
    'scan.bounded.mode' = 'latest-offset' (read_committed, no group.id) into a table and FINISHES
    at the end offsets recorded when it started, past the commit markers, with every row once."""
    records = bids(total, seed)
    expected = Counter((a, ws, n, t) for (a, ws), (n, t) in expected_hop(records).items())
    with bids_pipeline(weir_binary, work, "bounded", {"hop_out": 3}) as (broker, weir):
        weir.sql(SINK.format(bootstrap=broker.bootstrap, delivery="exactly-once"))
        weir.sql(HOP_JOB)
        produce_bids(broker.bootstrap, "bids", records)
        flush_windows(broker.bootstrap, "bids", BASE_MS + total * 5)
        deadline = time.monotonic() + 90
        while set(topic_rows(broker.bootstrap, "hop_out", "read_committed")) != set(expected):
            if time.monotonic() > deadline:
                raise Failure(f"the HOP job did not fill the topic within 90 s: {job_status(weir, 'hops')}")
            time.sleep(0.5)
        weir.sql(f"""CREATE SOURCE hops (auction BIGINT, ws BIGINT, bids BIGINT, total BIGINT)
            WITH (connector = 'kafka', topic = 'hop_out', 'properties.bootstrap.servers' = '{broker.bootstrap}',
                  'properties.isolation.level' = 'read_committed', format = 'json',
                  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset')""")
        weir.sql("CREATE TABLE hop_copy (auction BIGINT, ws BIGINT, bids BIGINT, total BIGINT, PRIMARY KEY (auction, ws))")
        weir.sql("""CREATE JOB copy WITH ('parallelism' = '2', 'execution.checkpointing.interval' = '500ms') AS
            INSERT INTO hop_copy SELECT * FROM hops""")
        status, error = wait_status(weir, {"FINISHED", "FAILED"}, 60, job="copy")
        if status != "FINISHED":
            raise Failure(f"the bounded job ended {status}: {error}")
        got = Counter(tuple(r) for r in weir.sql("SELECT auction, ws, bids, total FROM hop_copy"))
        if got != expected:
            missing = set(expected) - set(got)
            raise Failure(f"bounded read: {sum(got.values())} rows, expected {len(expected)}: {len(missing)} missing {sorted(missing)[:3]}")
        return f"{len(expected)} rows read from a transactional topic to its end offsets; the job FINISHED"


def check_upsert(weir_binary, work, seed=17, total=50_000):
    records = bids(total, seed)
    latest = Counter()
    sums = Counter()
    for _, value, _ in records:
        bid = json.loads(value)
        latest[bid["auction"]] += 1
        sums[bid["auction"]] += bid["price"]
    with bids_pipeline(weir_binary, work, "upsert", {"auction_counts": 2}) as (broker, weir):
        weir.sql(f"""CREATE TABLE auction_counts (auction BIGINT, bids BIGINT, total BIGINT, PRIMARY KEY (auction))
            WITH (connector = 'upsert-kafka', topic = 'auction_counts', 'properties.bootstrap.servers' = '{broker.bootstrap}',
                  'key.format' = 'json', 'value.format' = 'json')""")
        weir.sql("""CREATE JOB latest WITH ('parallelism' = '2', 'execution.checkpointing.interval' = '500ms') AS
            INSERT INTO auction_counts SELECT auction, COUNT(*), SUM(price) FROM bids GROUP BY auction""")
        produce_bids(broker.bootstrap, "bids", records)
        deadline = time.monotonic() + 90
        while True:
            table = {}
            for record in kafka_broker.read_uncommitted(broker.bootstrap, "auction_counts"):
                key = json.loads(record["key"])["auction"]
                value = json.loads(record["value"])
                table[key] = (value["bids"], value["total"])
            expected = {a: (latest[a], sums[a]) for a in latest}
            if table == expected or time.monotonic() > deadline:
                break
            time.sleep(1)
        if table != expected:
            wrong = [(a, table.get(a), expected[a]) for a in expected if table.get(a) != expected[a]]
            raise Failure(f"upsert-kafka: {len(wrong)} keys differ, e.g. {wrong[:3]}")
        # Tombstones for every 7th auction, into the partition of the key's records (same key bytes).
        records = kafka_broker.read_uncommitted(broker.bootstrap, "auction_counts")
        places = {json.loads(r["key"])["auction"]: (r["partition"], r["key"]) for r in records}
        deleted = sorted(a for a in places if a % 7 == 0)
        kafka_broker.produce(broker.bootstrap, "auction_counts",
                             [(places[a][0], places[a][1], None, None, None) for a in deleted])
        for a in deleted:
            del expected[a]
        # The topic read back as an upsert-kafka SOURCE: into a table keyed like it, and into an
        # aggregate over it (every later record of a key takes its earlier one back).
        weir.sql(f"""CREATE SOURCE auction_latest (auction BIGINT, bids BIGINT, total BIGINT, PRIMARY KEY (auction) NOT ENFORCED)
            WITH (connector = 'upsert-kafka', topic = 'auction_counts', 'properties.bootstrap.servers' = '{broker.bootstrap}',
                  'key.format' = 'json', 'value.format' = 'json')""")
        weir.sql("CREATE TABLE auction_copy (auction BIGINT, bids BIGINT, total BIGINT, PRIMARY KEY (auction))")
        weir.sql("""CREATE JOB copy WITH ('parallelism' = '2', 'execution.checkpointing.interval' = '500ms') AS
            INSERT INTO auction_copy SELECT * FROM auction_latest""")
        weir.sql("CREATE TABLE per_bucket (bucket BIGINT, auctions BIGINT, total BIGINT, PRIMARY KEY (bucket))")
        weir.sql("""CREATE JOB buckets WITH ('parallelism' = '3', 'execution.checkpointing.interval' = '500ms') AS
            INSERT INTO per_bucket SELECT bids % 10, COUNT(*), SUM(total) FROM auction_latest GROUP BY bids % 10""")
        buckets = Counter()
        for bids_count, sum_ in expected.values():
            buckets[(bids_count % 10, "n")] += 1
            buckets[(bids_count % 10, "t")] += sum_
        want_buckets = {b: (buckets[(b, "n")], buckets[(b, "t")]) for b in {k[0] for k in buckets}}
        deadline = time.monotonic() + 90
        while True:
            copy = {a: (n, t) for a, n, t in weir.sql("SELECT auction, bids, total FROM auction_copy")}
            got_buckets = {b: (n, t) for b, n, t in weir.sql("SELECT bucket, auctions, total FROM per_bucket")}
            if (copy == expected and got_buckets == want_buckets) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if copy != expected:
            wrong = [(a, copy.get(a), expected.get(a)) for a in set(copy) | set(expected) if copy.get(a) != expected.get(a)]
            raise Failure(f"upsert-kafka source into a table: {len(wrong)} keys differ, e.g. {sorted(wrong)[:3]}; "
                          f"jobs {weir.sql('SELECT name, status, error FROM weir_jobs')}")
        if got_buckets != want_buckets:
            raise Failure(f"upsert-kafka source into an aggregate: {got_buckets} != {want_buckets}")
        return (f"{total} bids: the latest record of each of {len(places)} auction keys equals the expected count "
                f"and sum; read back as an upsert-kafka source after {len(deleted)} tombstones: the table holds the "
                f"{len(expected)} live keys, and an aggregate over it the {len(want_buckets)} expected buckets")


def check_headers(weir_binary, work):
    """`headers MAP<STRING, BYTES> METADATA` reads each record's headers: a value by key (the last
    one when a key repeats, as Flink's map), NULL for a missing key or a header without a value, an
    empty map for a record without headers."""
    produced = [
        (0, None, b'{"id": 1}', BASE_MS, [("trace", b"abc"), ("tenant", b"t1")]),
        (1, None, b'{"id": 2}', BASE_MS, [("trace", b"first"), ("trace", b"last")]),
        (2, None, b'{"id": 3}', BASE_MS, None),
        (3, None, b'{"id": 4}', BASE_MS, [("trace", None), ("bytes", bytes([0, 255]))]),
    ]
    expected = {(1, "abc", "t1", 2), (2, "last", None, 1), (3, None, None, 0), (4, None, None, 2)}
    with kafka_broker.Broker() as broker:
        kafka_broker.create_topic(broker.bootstrap, "traced", PARTITIONS)
        kafka_broker.produce(broker.bootstrap, "traced", produced)
        weir = Weir(weir_binary, os.path.join(work, "headers")).start()
        try:
            weir.sql(f"""CREATE SOURCE traced (id BIGINT, headers MAP<STRING, BYTES> METADATA)
                WITH (connector = 'kafka', topic = 'traced', 'properties.bootstrap.servers' = '{broker.bootstrap}',
                      format = 'json', 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset')""")
            weir.sql("CREATE TABLE traces (id BIGINT, trace VARCHAR, tenant VARCHAR, headers BIGINT, PRIMARY KEY (id))")
            weir.sql("""CREATE JOB read_headers AS INSERT INTO traces
                SELECT id, CAST(headers['trace'] AS VARCHAR), CAST(headers['tenant'] AS VARCHAR), CAST(cardinality(headers) AS BIGINT)
                FROM traced""")
            status, error = wait_status(weir, {"FINISHED", "FAILED"}, 60, job="read_headers")
            if status != "FINISHED":
                raise Failure(f"the headers job ended {status}: {error}")
            got = {tuple(r) for r in weir.sql("SELECT id, trace, tenant, headers FROM traces")}
            if got != expected:
                raise Failure(f"headers: got {sorted(got)}, expected {sorted(expected)}")
            try:
                weir.sql("CREATE TABLE bad (h MAP<STRING, BYTES>)")
                raise Failure("a MAP column in a table was accepted")
            except Exception as e:  # psycopg's error for the refusal
                if "MAP columns are read only as metadata" not in str(e):
                    raise
        finally:
            weir.kill()
    return f"{len(expected)} records: header values by key, the last of a repeated key, NULLs and empty maps as expected"


def source_backlog(http_port):
    """The sum of `weir_task_source_backlog_records` over the source's subtasks on /metrics, or
    None while no subtask knows its backlog yet."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("weir_task_source_backlog_records{")]
    return sum(values) if values else None


def check_backlog(weir_binary, work, seed=37, total=40_000):
    """/metrics shows how far a Kafka source is behind the log end: records behind while a slow
    sink (2,000 rows/s per subtask) holds the job back, none once it has read the topic (while
    the sink still writes)."""
    records = bids(total, seed)
    with kafka_broker.Broker() as broker:
        kafka_broker.create_topic(broker.bootstrap, "bids", PARTITIONS)
        produce_bids(broker.bootstrap, "bids", records)
        weir = Weir(weir_binary, os.path.join(work, "backlog"), extra_args=["--http", "127.0.0.1:0"]).start()
        try:
            weir.sql(SOURCE.format(delay=WATERMARK_DELAY_S, topic="bids", bootstrap=broker.bootstrap, extra=""))
            weir.sql("CREATE TABLE copied (auction BIGINT, bidder BIGINT, price BIGINT, ts BIGINT)")
            weir.sql("""CREATE JOB slow WITH ('parallelism' = '2', 'debug.sink.rows-per-second' = '2000') AS
                INSERT INTO copied SELECT auction, bidder, price, ts FROM bids""")
            deadline = time.monotonic() + 30
            while not (first := source_backlog(weir.http_port)):
                if time.monotonic() > deadline:
                    raise Failure(f"no source backlog on /metrics within 30 s: {source_backlog(weir.http_port)}")
                time.sleep(0.2)
            written_then = weir.sql("SELECT COUNT(*) FROM copied")[0][0]
            if written_then >= total:
                raise Failure(f"the job had written all {written_then} rows when the backlog showed {first}")
            # The source takes what it fetched in large batches, each held while the slow sink
            # drains it: the backlog steps down as it reads, to 0 once it has read the topic.
            seen = [first]
            deadline = time.monotonic() + 90
            while (now := source_backlog(weir.http_port)) != 0:
                if time.monotonic() > deadline:
                    raise Failure(f"the backlog did not reach 0 once the job had read the topic: {seen + [now]}")
                if now != seen[-1]:
                    seen.append(now)
                time.sleep(0.2)
            return f"backlog {' -> '.join(f'{b:.0f}' for b in seen)} -> 0 records ({written_then} of {total} rows written at the first)"
        finally:
            weir.kill()


CHECKS = {
    "backlog": check_backlog,
    "idle": check_idle_topic,
    "idle-partition": check_idle_partition,
    "bad-input": check_bad_input,
    "crashes": check_crashes,
    "savepoint": check_savepoint_rescale,
    "broker-restart": check_broker_restart,
    "exactly-once-sink": lambda weir, work: check_sink(weir, work, "exactly-once"),
    "at-least-once-sink": lambda weir, work: check_sink(weir, work, "at-least-once", seed=19),
    "upsert-kafka": check_upsert,
    "bounded": check_bounded,
    "headers": check_headers,
}


def main():
    args = check_arguments(CHECKS)
    if ensure_psycopg() is None:
        print("*** SKIPPING Kafka checks: psycopg cannot be installed ***")
        return 0
    try:
        kafka_broker.reexec_in_venv()
    except kafka_broker.Unavailable as e:
        print(f"*** SKIPPING Kafka checks: {e} ***")
        return 0
    work = tempfile.mkdtemp(prefix="weir-kafka-pipeline-")
    return run_checks("kafka pipeline", CHECKS, args.only or list(CHECKS), work, lambda check: check(args.weir, work))


if __name__ == "__main__":
    sys.exit(main())
