#!/usr/bin/env python3
"""The Python baseline: a Darooghe backfill written the way the original producer is.

The original (darooghe_pulse.py, see the seed README) builds each event as a dict with `random`
choices per field, `uuid.uuid4()` and a `datetime` ISO timestamp, serialises it with
`json.dumps`, and hands it to confluent-kafka's `Producer` keyed by `customer_id`, with a delivery
callback and `poll(0)` after each produce, and `flush()` at the end. This script does the same for
`--count` events, as fast as it can (a backfill: no sleeping, timestamps spread over the last 7
days), so that `sim backfill` can be compared with it on the same broker. The events are made
by `python_events.py` beside it, which also writes them as JSON lines without Kafka.

Like `sim`, the producer is idempotent with `acks=all`. The event has the seed's 17 fields; 50
merchants and 1,000 customers are lists of dicts built at start; commission is the seed's flat 2%
and VAT 9% of the amount (integer rials). The topic is created first (3 partitions, replication 1)
with the AdminClient, since Tansu does not create topics on first produce; a topic that already
exists is kept (see `create_topic` for librdkafka's mock cluster).

The clock runs from the first produce to the end of `flush()`; setting up (pools, topic, the
producer's first metadata request) is outside it. At the end it prints one JSON line:

    {"events": N, "seconds": S, "events_per_second": R, "delivered": D, "failed": F,
     "bytes_per_event": B, "partitions": P}

where B is the mean size of the JSON value in bytes and P the topic's partition count. Its exit status is 0 when every event was
delivered, 1 otherwise.

    python3 benches/python_baseline.py --brokers 127.0.0.1:9092 --topic baseline --count 200000
"""

import argparse
import json
import logging
import sys
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

# The events themselves, shared with the Kafka-less yardstick (this script's folder is on sys.path).
from python_events import build_customers, build_merchants, generate_event, historical_times


class TransactionProducer:
    """Generates and publishes transaction events to Kafka."""

    def __init__(self, broker, topic, merchants, customers):
        self.config = {
            "bootstrap.servers": broker,
            "acks": "all",
            "enable.idempotence": True,
        }
        self.producer = Producer(self.config)
        self.topic = topic
        self.merchants = merchants
        self.customers = customers
        self.delivered = 0
        self.failed = 0

    def generate_event(self, timestamp_override):
        """Generate a realistic transaction event (see python_events.generate_event)."""
        return generate_event(self.merchants, self.customers, timestamp_override)

    def produce_event(self, event):
        """Send an event to Kafka; returns the size of its value in bytes."""
        value = json.dumps(event)
        while True:
            try:
                self.producer.produce(
                    self.topic,
                    key=event["customer_id"],
                    value=value,
                    callback=self.delivery_report,
                )
                break
            except BufferError:
                # librdkafka's queue is full (100,000 messages by default): wait for room.
                self.producer.poll(0.05)
        self.producer.poll(0)
        return len(value)

    def delivery_report(self, err, msg):
        """Callback for message delivery confirmation."""
        if err:
            self.failed += 1
            logging.error(f"Delivery failed: {err}")
        else:
            self.delivered += 1


def create_topic(broker, topic, partitions):
    """Creates the topic (Tansu does not create topics on first produce); returns how.

    A topic that already exists is kept. librdkafka's mock cluster (sim's embedded broker)
    names a controller that is not among its brokers, so an AdminClient there waits for the
    controller until it times out; it does create topics on a metadata request, so there the
    topic is left to that (with the mock's default partition count).
    """
    admin = AdminClient({"bootstrap.servers": broker})
    meta = admin.list_topics(timeout=10)
    if topic in meta.topics and meta.topics[topic].error is None:
        return "exists"
    if meta.controller_id not in meta.brokers:
        return "auto-created (the broker names no reachable controller)"
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)], request_timeout=30
    )
    for future in futures.values():
        try:
            future.result(timeout=30)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            return "exists"
    return "created"


def wait_for_topic(producer, topic, partitions, timeout=30.0):
    """Waits until the topic has at least `partitions` partitions in the producer's metadata
    (the request also connects the producer); returns how many it has."""
    deadline = time.monotonic() + timeout
    while True:
        meta = producer.list_topics(topic, timeout=10)
        t = meta.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) >= partitions:
            return len(t.partitions)
        if time.monotonic() > deadline:
            raise SystemExit(f"topic {topic} has no {partitions} partitions after {timeout} s")
        time.sleep(0.1)


def produce_historical_events(tp, count):
    """Generate `count` events over the past 7 days, as fast as possible."""
    total_bytes = 0
    started = time.perf_counter()
    for event_time in historical_times(count):
        event = tp.generate_event(timestamp_override=event_time)
        total_bytes += tp.produce_event(event)
    tp.producer.flush()
    return time.perf_counter() - started, total_bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", required=True, help="bootstrap servers, HOST:PORT")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=200000)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    how = create_topic(args.brokers, args.topic, args.partitions)
    tp = TransactionProducer(
        args.brokers, args.topic, build_merchants(), build_customers()
    )
    partitions = wait_for_topic(tp.producer, args.topic, args.partitions)
    print(f"topic {args.topic}: {how}, {partitions} partitions", file=sys.stderr, flush=True)

    seconds, total_bytes = produce_historical_events(tp, args.count)
    print(
        json.dumps(
            {
                "events": args.count,
                "seconds": round(seconds, 3),
                "events_per_second": round(args.count / seconds, 1),
                "delivered": tp.delivered,
                "failed": tp.failed,
                "bytes_per_event": round(total_bytes / max(args.count, 1), 1),
                "partitions": partitions,
            }
        ),
        flush=True,
    )
    return 0 if tp.delivered == args.count and tp.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
