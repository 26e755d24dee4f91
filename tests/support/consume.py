#!/usr/bin/env python3
"""Reads a Kafka topic for the integration tests and prints one JSON line per message.

Partitions are ASSIGNED explicitly from the beginning, never joined through a consumer group:
against Tansu a group's first join takes about 20 s and its high watermark can be lower than the
last offset, so the reader simply reads until it has what it was told to expect.

Stops when --expect messages were read (0: no target), when --timeout seconds have passed, or,
with --until-stdin-closes, once standard input is closed (it then takes what the client has
already fetched and exits). Each line: partition, offset, key, value, timestamp (ms),
timestamp_type (1 CreateTime, 2 LogAppendTime) and headers as [name, value] pairs.
"""

import argparse
import json
import sys
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def text(raw):
    return None if raw is None else raw.decode("utf-8", errors="replace")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--until-stdin-closes", action="store_true")
    args = parser.parse_args()

    stop = threading.Event()
    if args.until_stdin_closes:

        def watch_stdin():
            sys.stdin.read()
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()

    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            # The client wants a group id; it is never joined (assign, no subscribe).
            "group.id": "sim-integration-tests",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            # Otherwise librdkafka's defaults (fetch.wait.max.ms 500, as kcat has): the tests
            # read as an ordinary consumer would.
            # The embedded broker goes away when sim stops; do not spam reconnect errors.
            "log_level": 3,
        }
    )
    consumer.assign(
        [TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)]
    )

    deadline = time.monotonic() + args.timeout
    read = 0
    errors = 0
    out = sys.stdout
    while time.monotonic() < deadline:
        if args.expect and read >= args.expect:
            break
        stopping = stop.is_set()
        batch = consumer.consume(num_messages=1000, timeout=0.2)
        for message in batch:
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    errors += 1
                continue
            ts_type, ts = message.timestamp()
            headers = [[k, text(v)] for k, v in (message.headers() or [])]
            out.write(
                json.dumps(
                    {
                        "partition": message.partition(),
                        "offset": message.offset(),
                        "key": text(message.key()),
                        "value": text(message.value()),
                        "timestamp": ts,
                        "timestamp_type": ts_type,
                        "headers": headers,
                    }
                )
                + "\n"
            )
            read += 1
        out.flush()
        # Told to stop: leave once what was already fetched has been taken.
        if stopping and not batch:
            break
    consumer.close()
    print(f"consume.py: read {read} messages ({errors} errors)", file=sys.stderr)


if __name__ == "__main__":
    main()
