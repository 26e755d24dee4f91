#!/usr/bin/env python3
"""The Python baseline: a Darooghe backfill written the way the original producer is.

The original (darooghe_pulse.py, see the seed README) builds each event as a dict with `random`
choices per field, `uuid.uuid4()` and a `datetime` ISO timestamp, serialises it with
`json.dumps`, and hands it to confluent-kafka's `Producer` keyed by `customer_id`, with a delivery
callback and `poll(0)` after each produce, and `flush()` at the end. This script does the same for
`--count` events, as fast as it can (a backfill: no sleeping, timestamps spread over the last 7
days), so that `sim backfill` can be compared with it on the same broker.

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
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

MERCHANT_COUNT = 50
CUSTOMER_COUNT = 1000
FRAUD_RATE = 0.02
DECLINED_RATE = 0.05
BACKFILL_DAYS = 7

MERCHANT_CATEGORIES = ["retail", "food_service", "entertainment", "transportation", "government"]
PAYMENT_METHODS = ["online", "pos", "mobile", "nfc"]
COMMISSION_TYPES = ["flat", "progressive", "tiered"]
CUSTOMER_TYPES = ["individual", "CIP", "business"]
FAILURE_REASONS = [
    "insufficient_funds",
    "incorrect_pin",
    "card_expired",
    "limit_exceeded",
    "issuer_unavailable",
    "suspected_fraud",
]
CITIES = [
    (35.6892, 51.3890),  # Tehran
    (36.2605, 59.6168),  # Mashhad
    (32.6546, 51.6680),  # Isfahan
    (29.5918, 52.5837),  # Shiraz
    (38.0800, 46.2919),  # Tabriz
    (35.8400, 50.9391),  # Karaj
]
APP_VERSIONS = {"Android": ["2.4.1", "2.4.0", "2.3.8", "2.2.0"], "iOS": ["3.1.0", "3.0.2", "2.9.5"]}


def near(lat, lng, spread):
    return {
        "lat": round(lat + random.uniform(-spread, spread), 4),
        "lng": round(lng + random.uniform(-spread, spread), 4),
    }


def build_merchants(count):
    merchants = []
    for i in range(count):
        lat, lng = random.choice(CITIES)
        merchants.append(
            {
                "merchant_id": f"merch_{i + 1}",
                "merchant_category": random.choice(MERCHANT_CATEGORIES),
                "commission_type": random.choice(COMMISSION_TYPES),
                "location": near(lat, lng, 0.1),
            }
        )
    return merchants


def build_customers(count):
    customers = []
    for i in range(count):
        lat, lng = random.choice(CITIES)
        os_name = random.choice(["Android", "iOS"])
        customers.append(
            {
                "customer_id": f"cust_{i + 1}",
                "customer_type": random.choice(CUSTOMER_TYPES),
                "home": near(lat, lng, 0.1),
                "device_info": {"os": os_name, "app_version": random.choice(APP_VERSIONS[os_name])},
            }
        )
    return customers


def generate_random_datetime(start, end):
    return start + timedelta(seconds=random.uniform(0, (end - start).total_seconds()))


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
        """Generate a realistic transaction event."""
        merchant = random.choice(self.merchants)
        customer = random.choice(self.customers)
        amount = random.randint(50000, 2000000)
        commission = int(amount * 0.02)
        vat = int(amount * 0.09)
        declined = random.random() < DECLINED_RATE
        risky = random.random() < FRAUD_RATE
        base = merchant["location"] if random.random() < 0.5 else customer["home"]
        return {
            "transaction_id": str(uuid.uuid4()),
            "timestamp": timestamp_override.isoformat(timespec="milliseconds") + "Z",
            "customer_id": customer["customer_id"],
            "merchant_id": merchant["merchant_id"],
            "merchant_category": merchant["merchant_category"],
            "payment_method": random.choice(PAYMENT_METHODS),
            "amount": amount,
            "location": near(base["lat"], base["lng"], 0.03),
            "device_info": customer["device_info"],
            "status": "declined" if declined else "approved",
            "commission_type": merchant["commission_type"],
            "commission_amount": commission,
            "vat_amount": vat,
            "total_amount": amount + commission + vat,
            "customer_type": customer["customer_type"],
            "risk_level": random.randint(4, 5) if risky else random.randint(1, 3),
            "failure_reason": random.choice(FAILURE_REASONS) if declined else None,
        }

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
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    start_time = now - timedelta(days=BACKFILL_DAYS)
    total_bytes = 0
    started = time.perf_counter()
    for _ in range(count):
        event_time = generate_random_datetime(start_time, now)
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
        args.brokers, args.topic, build_merchants(MERCHANT_COUNT), build_customers(CUSTOMER_COUNT)
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
