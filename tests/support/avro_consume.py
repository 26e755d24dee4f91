#!/usr/bin/env python3
"""Reads an Avro topic for the integration tests the way a Confluent client does, and prints one
JSON line per message.

Values are decoded by confluent-kafka's own AvroDeserializer, which reads the schema id of each
message's wire format and fetches the schema from the registry (SchemaRegistryClient); the test
then compares the decoded records with sim's JSON events. Partitions are assigned from the
beginning (no consumer group), as in consume.py. Each line: key, the decoded value, the magic byte
and the schema id read from the raw bytes, and the subject's latest version as the registry
reports it, and where the message was (partition, offset). With `--expect-id`, only messages
with that schema id count toward `--expect` (to read until a new schema is in use).
"""

import argparse
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--expect-id", type=int, default=None)
    args = parser.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    latest = registry.get_latest_version(f"{args.topic}-value")
    deserialize = AvroDeserializer(registry)

    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": "sim-integration-tests",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    consumer.assign(
        [TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)]
    )
    deadline = time.monotonic() + args.timeout
    read = 0
    while read < args.expect and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.2):
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    print(f"avro_consume.py: {message.error()}", file=sys.stderr)
                continue
            raw = message.value()
            value = deserialize(raw, SerializationContext(args.topic, MessageField.VALUE))
            line = {
                "key": message.key().decode("utf-8"),
                "value": value,
                "magic": raw[0],
                "schema_id": int.from_bytes(raw[1:5], "big"),
                "latest": {"id": latest.schema_id, "version": latest.version},
                "partition": message.partition(),
                "offset": message.offset(),
            }
            sys.stdout.write(json.dumps(line) + "\n")
            if args.expect_id is None or line["schema_id"] == args.expect_id:
                read += 1
    sys.stdout.flush()
    consumer.close()
    print(f"avro_consume.py: read {read} messages", file=sys.stderr)


if __name__ == "__main__":
    main()
