"""A real Kafka-protocol broker for Weir's tests: noida-db's one binary, on a free loopback port.

    from kafka_broker import Broker, create_topic, produce, read_committed
    with Broker() as broker:
        create_topic(broker.bootstrap, "in", 4)
        produce(broker.bootstrap, "in", [(0, b"k", b"v", 1000, None)])
        print(read_committed(broker.bootstrap, "in"))

`ensure_installed()` puts noida-db (the broker) and confluent-kafka (the client) into the venv at
~/.cache/weir-venv that the psycopg check also uses, or raises `Unavailable` saying why.
`Broker` itself needs only the standard library, so a script run with the system python3 can start
one; the client helpers (create_topic, produce, read_*, ...) import confluent_kafka and so need the
venv python: `reexec_in_venv()` switches a script to it.

Facts about noida-db 0.2.3 that this module relies on (found by running it, see
kafka_broker_check.py for what it does and does not support):
- The wheel ships the binary as site-packages/noida_db/noida-db; `noida-db` on PATH is a Python
  wrapper (noida_db/cli.py) that runs it in a child process, so signals sent to the wrapper's pid
  would not reach the broker. We run the binary itself.
- `noida-db start --data-dir D --host 127.0.0.1 --only kafka --kafka-port N` runs in the
  foreground; SIGTERM saves and exits 0. Without --only it would also open Postgres, MySQL, Redis,
  ... on their default ports. It also listens on a random control port and writes
  D/noida.control.json (pid, port, token); a second server on the same data dir is refused, a
  stale file left by SIGKILL is not. Kafka data lives in D/kafka.json.
- A port already in use makes it exit 1 with "port N is already in use".
- It keeps the data in memory and rewrites D/kafka.json (write, then rename) about 1 s after the
  first change since the last save. A SIGKILL loses what was acknowledged in that last second,
  offsets included (the next records reuse them); SIGTERM saves first. Crash tests that need
  acknowledged data to survive call Broker.wait_saved() before Broker.kill().
- It never aborts an open transaction by itself (transaction.timeout.ms is not enforced): only a
  new init_transactions() with the same transactional.id, which fences the old producer, does.
  Until then read_committed consumers stop at the open transaction.
- The binary asks for two weak glibc 2.39 symbols; on older glibc (Debian 12 has 2.36) the loader
  prints "weak version `GLIBC_2.39' not found" on stderr and the binary runs normally.
"""

import atexit
import collections
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid

# One venv for every Python client the checks use (weir_server.VENV).
from weir_server import VENV

NOIDA_REQUIREMENT = "noida-db==0.2.3"
NOIDA_VERSION = "0.2.3"
CONFLUENT_REQUIREMENT = "confluent-kafka>=2.3,<3"

# noida-db writes its data file this long after the first unsaved change (measured: a record is
# lost to SIGKILL 0.9 s after its acknowledgement, kept 1.1 s after).
SAVE_DELAY_S = 1.0

# Consumer groups: the broker waits session.timeout.ms before it gives a dead member's partitions
# away. librdkafka's default is 45 s; tests that kill consumers should not wait that long.
SESSION_TIMEOUT_MS = 6000


class Unavailable(Exception):
    """The broker or the client cannot be installed or run here; the message says why."""


class BrokerError(Exception):
    """The broker did not start (the message ends with the tail of its log) or misbehaved."""


Installed = collections.namedtuple("Installed", "python binary noida_version confluent_version")

_installed = None


def venv_python():
    return os.path.join(VENV, "bin", "python")


# Run with the venv python: where the broker's binary is, and which versions are installed.
_PROBE = r'''
import importlib.metadata as md, importlib.util, json, os
out = {}
for dist in ("noida-db", "confluent-kafka"):
    try:
        out[dist] = md.version(dist)
    except md.PackageNotFoundError:
        out[dist] = None
try:
    import confluent_kafka  # a wheel whose native part does not load counts as missing
except Exception:
    out["confluent-kafka"] = None
spec = importlib.util.find_spec("noida_db")
out["binary"] = os.path.join(os.path.dirname(spec.origin), "noida-db") if spec else None
print(json.dumps(out))
'''


def _probe(python):
    result = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise Unavailable(f"{python} does not run: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


def ensure_installed():
    """Installs noida-db and confluent-kafka into the venv when missing and checks that the broker
    binary runs here. Returns Installed(python, binary, noida_version, confluent_version)."""
    global _installed
    if _installed is not None:
        return _installed
    python = venv_python()
    if not os.path.exists(python):
        made = subprocess.run([sys.executable, "-m", "venv", VENV], capture_output=True, text=True)
        if made.returncode != 0:
            raise Unavailable(f"cannot create the venv {VENV} (install python3-venv): {made.stderr[-2000:]}")
    found = _probe(python)
    if found["noida-db"] != NOIDA_VERSION or found["confluent-kafka"] is None or found["binary"] is None:
        try:
            install = subprocess.run([python, "-m", "pip", "install", "--quiet", NOIDA_REQUIREMENT, CONFLUENT_REQUIREMENT],
                                     capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"pip did not install {NOIDA_REQUIREMENT} and {CONFLUENT_REQUIREMENT} within 600 s") from None
        if install.returncode != 0:
            raise Unavailable(f"cannot install {NOIDA_REQUIREMENT} and {CONFLUENT_REQUIREMENT} from PyPI: "
                              f"{install.stderr[-2000:]}")
        found = _probe(python)
    binary = found["binary"]
    if binary is None or not os.path.isfile(binary):
        # noida-db's wheels are per platform; a platform without one gets no binary.
        raise Unavailable(f"noida-db {found['noida-db']} has no broker binary for this platform (looked for {binary})")
    if not os.access(binary, os.X_OK):
        # noida-db's own wrapper chmods the binary before each run, as some installers drop the bit.
        os.chmod(binary, 0o755)
    version = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30)
    if version.returncode != 0 or NOIDA_VERSION not in version.stdout:
        raise Unavailable(f"{binary} does not run here (exit {version.returncode}): "
                          f"{version.stdout[-1000:]}{version.stderr[-1000:]}")
    _installed = Installed(python, binary, found["noida-db"], found["confluent-kafka"])
    return _installed


def reexec_in_venv():
    """Makes sure the packages are installed, then, unless this process already runs the venv's
    python, replaces it with the venv python running the same script and arguments."""
    installed = ensure_installed()
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        os.execv(installed.python, [installed.python, os.path.abspath(sys.argv[0]), *sys.argv[1:]])
    return installed


def _free_port():
    # The port is released before the broker binds it, so another process can take it in between:
    # Broker.start() sees the broker's "already in use" exit and tries another one.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kafka_answers(host, port, timeout=1.0):
    """True when host:port answers a Kafka ApiVersions v0 request without error: the broker is
    accepting Kafka connections, not merely listening. Standard library only."""
    client_id = b"weir-probe"
    correlation_id = 7
    # Request header v1: api_key 18 (ApiVersions), api_version 0, correlation id, client id; no body.
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exactly(s, 4)
            (size,) = struct.unpack(">i", head)
            if size < 6:
                return False
            reply = _recv_exactly(s, min(size, 6))
            got_correlation, error_code = struct.unpack(">ih", reply)
            return got_correlation == correlation_id and error_code == 0
    except (OSError, struct.error, ConnectionError):
        return False


def _recv_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class Broker:
    """noida-db serving Kafka only, on 127.0.0.1 and a free port, with its data in a temp dir.

    The temp dir holds data/ (the broker's --data-dir) and broker.log (stdout and stderr of every
    run, each run after a header line). restart() reuses both the port and the data dir, so
    clients configured with `bootstrap` reconnect to the same broker state."""

    def __init__(self, workdir=None, keep=False, start_timeout=30.0, stop_timeout=10.0):
        self.installed = ensure_installed()
        self._owns_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="weir-kafka-")
        self.data_dir = os.path.join(self.workdir, "data")
        self.log_path = os.path.join(self.workdir, "broker.log")
        self.keep = keep
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = None
        self.process = None
        self.started_in = None  # seconds from launch to answering ApiVersions, last start
        self._log_offset = 0  # where the current run's output starts in broker.log

    @property
    def bootstrap(self):
        if self.port is None:
            raise BrokerError("the broker has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def running(self):
        return self.process is not None and self.process.poll() is None

    def start(self):
        """Starts the broker on a free port (or on its previous port after a stop) and returns once
        it answers Kafka requests."""
        if self.running():
            raise BrokerError(f"the broker is already running (pid {self.pid})")
        if self.port is None:
            for _ in range(10):
                port = _free_port()
                if self._launch_and_wait(port):
                    return self
            raise BrokerError("ten free ports in a row were taken before the broker could bind them")
        # A restart must keep the port: clients hold it in their bootstrap list. The binary binds
        # it again at once after a stop or a kill (its listener sets SO_REUSEADDR, as Rust's
        # runtimes do), so only another process that took the port meanwhile can stop it; give
        # that a few seconds to go away.
        deadline = time.monotonic() + 5.0
        while not self._launch_and_wait(self.port):
            if time.monotonic() > deadline:
                raise BrokerError(f"port {self.port} stays in use by another process; cannot restart on it")
            time.sleep(0.2)
        return self

    def _launch_and_wait(self, port):
        """Launches the binary on `port`. True once it answers; False when the port was taken;
        raises BrokerError for any other failure."""
        os.makedirs(self.data_dir, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"===== {time.strftime('%H:%M:%S')} starting on port {port}\n".encode())
            log.flush()
            launched = time.monotonic()
            self.process = subprocess.Popen(
                [self.installed.binary, "start", "--data-dir", self.data_dir, "--host", "127.0.0.1",
                 "--only", "kafka", "--kafka-port", str(port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C meant for the test does not reach the broker
                # first, so the test's own cleanup decides how the broker stops.
                start_new_session=True)
        _live.add(self)
        deadline = launched + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._reap()
                if f"port {port} is already in use" in self.log_tail():
                    return False
                raise BrokerError(f"the broker exited with {self.process.returncode} while starting:\n{self.log_tail()}")
            if kafka_answers("127.0.0.1", port):
                self.port = port
                self.started_in = time.monotonic() - launched
                return True
            time.sleep(0.05)
        self.kill()
        raise BrokerError(f"the broker did not answer on port {port} within {self.start_timeout} s:\n{self.log_tail()}")

    def log_tail(self, chars=4000):
        """The end of the current run's output."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")[-chars:]
        except OSError as e:
            return f"(no log: {e})"

    def stop(self):
        """SIGTERM (the broker saves its data and exits), SIGKILL if it has not exited in time."""
        if not self.running():
            self._reap()
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reap()

    def wait_saved(self):
        """Waits until everything acknowledged before the call is on disk, so that a kill() after it
        loses nothing. noida-db does not say when it has saved; the file's mtime shows a save but not
        which changes it holds, so wait out the save delay with a margin for a loaded machine."""
        time.sleep(SAVE_DELAY_S * 2)

    def kill(self):
        """SIGKILL, as a crash: whatever the broker had not saved yet is lost."""
        if self.running():
            self.process.kill()
            self.process.wait()
        self._reap()

    def restart(self):
        """Stops the broker if it runs (after kill() it does not) and starts it again on the same
        port and data dir."""
        self.stop()
        return self.start()

    def _reap(self):
        if self.process is not None and self.process.poll() is not None:
            _live.discard(self)

    def close(self):
        """Stops the broker and deletes its temp dir (unless keep=True or the caller gave it)."""
        self.stop()
        if self._owns_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False


# Brokers still running when the interpreter exits (a test failed before stopping its broker) are
# killed, so none outlives the test run. Their temp dirs stay, with the log, for a look.
_live = set()


@atexit.register
def _kill_leftovers():
    for broker in list(_live):
        broker.kill()


# ---------------------------------------------------------------------------------------------
# Client helpers: these need confluent_kafka, i.e. the venv python.

def admin(bootstrap):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap})


def _wait_partitions(client, topic, at_least, timeout_s):
    """Waits until the metadata shows `topic` with at least `at_least` partitions: a real Kafka
    cluster propagates a new topic's metadata a little after CreateTopics answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        topic_md = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if topic_md is not None and topic_md.error is None and len(topic_md.partitions) >= at_least:
            return len(topic_md.partitions)
        if time.monotonic() > deadline:
            raise BrokerError(f"topic {topic} does not show {at_least} partitions: {topic_md and topic_md.partitions}")
        time.sleep(0.1)


def create_topic(bootstrap, name, partitions, config=None, timeout_s=30.0):
    """Creates a topic with `partitions` partitions (replication factor 1: one broker).

    Retention is off unless `config` says otherwise: the tests' records carry event times from 2024
    as their timestamps, and noida applies `retention.ms` (7 days by default) to record timestamps
    about once a second, so such records vanish a second after they are produced (real Kafka only
    deletes closed segments, so the active one would stay)."""
    from confluent_kafka.admin import NewTopic
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(name, partitions, 1, config={"retention.ms": "-1", **(config or {})})],
                                   operation_timeout=timeout_s, request_timeout=timeout_s)
    futures[name].result(timeout_s)
    _wait_partitions(client, name, partitions, timeout_s)


def add_partitions(bootstrap, name, total, timeout_s=30.0):
    """Grows a topic to `total` partitions (CreatePartitions)."""
    from confluent_kafka.admin import NewPartitions
    client = admin(bootstrap)
    futures = client.create_partitions([NewPartitions(name, total)],
                                       operation_timeout=timeout_s, request_timeout=timeout_s)
    futures[name].result(timeout_s)
    _wait_partitions(client, name, total, timeout_s)


def partition_count(bootstrap, topic, timeout_s=10.0):
    topic_md = admin(bootstrap).list_topics(topic, timeout=timeout_s).topics.get(topic)
    if topic_md is None or topic_md.error is not None:
        raise BrokerError(f"no topic {topic}: {topic_md and topic_md.error}")
    return len(topic_md.partitions)


def produce(bootstrap, topic, records, config=None, timeout_s=30.0):
    """Produces (partition, key, value, timestamp_ms, headers) tuples and flushes. partition None
    lets the partitioner choose; timestamp None lets the client stamp the send time; headers are a
    list of (name, bytes) or None. Returns the [(partition, offset)] the broker gave each record,
    in order, and raises if any record was not acknowledged."""
    from confluent_kafka import KafkaException, Producer
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **(config or {})})
    delivered = [None] * len(records)
    errors = []

    def on_delivery(index):
        def report(err, msg):
            if err is not None:
                errors.append((index, err))
            else:
                delivered[index] = (msg.partition(), msg.offset())
        return report

    for index, (partition, key, value, timestamp, headers) in enumerate(records):
        kwargs = {"key": key, "value": value, "on_delivery": on_delivery(index)}
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp is not None:
            kwargs["timestamp"] = timestamp
        if headers:
            kwargs["headers"] = headers
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
    left = producer.flush(timeout_s)
    if errors:
        raise KafkaException(errors[0][1])
    if left:
        raise BrokerError(f"{left} of {len(records)} records not acknowledged within {timeout_s} s")
    return delivered


def read_records(bootstrap, topic, timeout_s=30.0, isolation="read_committed"):
    """Every record of every partition of `topic`, from the beginning to the current end, as dicts
    {partition, offset, key, value, timestamp, headers} sorted by partition and offset.

    The end of a partition is where librdkafka reports partition EOF. For read_committed it
    compares the fetch position with the last stable offset of the fetch response, so the read
    stops below an open transaction; the offsets it skips (transaction markers, aborted records)
    count as read. The watermarks taken first (ListOffsets with the same isolation level) must be
    reached too, so a partition's EOF from before its records are visible does not end the read."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        # A group id is required by the client but unused: partitions are assigned, never
        # subscribed, and nothing is committed.
        "group.id": f"weir-reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": isolation,
    })
    deadline = time.monotonic() + timeout_s
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions)
        ends = {}
        for p in partitions:
            _, ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s, cached=False)
        pending = set(partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records = []
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read of {topic} ({isolation}) did not reach the end of partitions "
                                   f"{sorted(pending)} within {timeout_s} s (ends {ends}, {len(records)} records read)")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= ends[msg.partition()]:
                        pending.discard(msg.partition())
                    continue
                raise KafkaException(msg.error())
            records.append({
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": msg.key(),
                "value": msg.value(),
                "timestamp": msg.timestamp()[1],
                "headers": msg.headers(),
            })
        records.sort(key=lambda r: (r["partition"], r["offset"]))
        return records
    finally:
        consumer.close()


def read_committed(bootstrap, topic, timeout_s=30.0):
    return read_records(bootstrap, topic, timeout_s, "read_committed")


def read_uncommitted(bootstrap, topic, timeout_s=30.0):
    return read_records(bootstrap, topic, timeout_s, "read_uncommitted")


def group_consumer(bootstrap, group_id, **config):
    """A consumer in group `group_id` with a short session timeout (see SESSION_TIMEOUT_MS),
    manual commits and reading from the beginning. Keyword arguments override the config, with
    dots written as underscores (isolation_level="read_committed")."""
    from confluent_kafka import Consumer
    settings = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 3,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    settings.update({key.replace("_", "."): value for key, value in config.items()})
    return Consumer(settings)


def committed_offsets(bootstrap, group_id, topic, timeout_s=10.0):
    """{partition: committed offset} of `group_id` on `topic`; partitions without a commit are
    left out. Reads with a consumer that never joins the group, so the group is undisturbed."""
    from confluent_kafka import TopicPartition
    consumer = group_consumer(bootstrap, group_id)
    try:
        partitions = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s)
        return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
    finally:
        consumer.close()


def offsets_for_time(bootstrap, topic, timestamp_ms, timeout_s=10.0):
    """{partition: offset of the first record with timestamp >= timestamp_ms}; -1 when there is
    none (Kafka's "end"). ListOffsets by timestamp."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"weir-times-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        found = consumer.offsets_for_times([TopicPartition(topic, p, timestamp_ms) for p in partitions], timeout=timeout_s)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()
