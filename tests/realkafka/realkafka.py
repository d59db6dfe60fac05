"""realkafka.py -- what the real-Kafka tests share: a virtual environment with the
independent client (confluent-kafka from PyPI, pinned), a consumer built on it that
offers the harness's waits (harness.ConsumerBase), Kafka's Java partitioner, the
cluster of tools/kafka_cluster.py, and the setup each case repeats.

Importing this module re-executes the importing script inside build/venv-realkafka
when confluent-kafka is missing (installing it there the first time), so a test file
starts with `from realkafka import ...` and nothing else before it.
"""

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CONFLUENT_KAFKA = "confluent-kafka==2.16.1"

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import harness as h  # noqa: E402  (re-exported)

h.in_venv("confluent_kafka", CONFLUENT_KAFKA, "realkafka")

from confluent_kafka import Consumer  # noqa: E402

from kafka_cluster import KafkaCluster  # noqa: E402,F401  (re-exported)


def murmur2(data):
    """Kafka's Utils.murmur2 (what the Java client's default partitioner hashes keys with)."""
    m, r = 0x5bd1e995, 24
    n = len(data)
    h32 = (0x9747b28c ^ n) & 0xffffffff
    for i in range(n // 4):
        k = data[4 * i] | data[4 * i + 1] << 8 | data[4 * i + 2] << 16 | data[4 * i + 3] << 24
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h32 = (h32 * m) & 0xffffffff
        h32 ^= k
    tail = n & ~3
    rem = n % 4
    if rem == 3:
        h32 ^= data[tail + 2] << 16
    if rem >= 2:
        h32 ^= data[tail + 1] << 8
    if rem >= 1:
        h32 ^= data[tail]
        h32 = (h32 * m) & 0xffffffff
    h32 ^= h32 >> 13
    h32 = (h32 * m) & 0xffffffff
    h32 ^= h32 >> 15
    return h32


def java_partition(key, partitions):
    return (murmur2(key) & 0x7fffffff) % partitions


class KafkaConsumer(h.ConsumerBase):
    """A confluent-kafka consumer (read_committed) in a thread of its own; the messages
    in the harness's shape, plus key_bytes (the key as sent)."""

    def __init__(self, bootstrap, topics, extra=None):
        self.messages = []
        self._incoming = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        conf = {"bootstrap.servers": bootstrap, "group.id": f"check-{time.time()}",
                "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "isolation.level": "read_committed",
                # Broker failures are the point of these tests: their lines are noise.
                "log_level": 2}
        conf.update(extra or {})
        self.c = Consumer(conf)
        self.c.subscribe(list(topics))
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.is_set():
            m = self.c.poll(0.2)
            if m is None or m.error():
                continue
            hdrs = [(k, v.decode() if v is not None else None) for k, v in (m.headers() or [])]
            msg = {"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                   "key": m.key().decode() if m.key() is not None else None,
                   "key_bytes": m.key(),
                   "value": m.value().decode() if m.value() is not None else None,
                   "headers": hdrs}
            with self.lock:
                self._incoming.append(h.decode_message(msg))
        self.c.close()

    def alive(self):
        return self.thread.is_alive()

    def poll(self):
        with self.lock:
            self.messages.extend(self._incoming)
            self._incoming = []
        return len(self.messages)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)
        self.poll()


def paced(sql, seconds):
    """The insert SQL with a pause after each transaction (a stream, not one burst)."""
    return sql.replace("COMMIT;\n", f"COMMIT;\nSELECT pg_sleep({seconds});\n")


def stop_relay(relay):
    """Stop the relay with SIGTERM and check that it stopped cleanly."""
    rc, _ = relay.stop()
    h.check(rc == 0, f"the relay exited with {rc} at SIGTERM")


start_streaming = h.start_streaming  # noqa: E305  (re-exported for the real-Kafka tests)
