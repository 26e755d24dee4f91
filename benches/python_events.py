#!/usr/bin/env python3
"""The seed's events made in CPython, written as JSON lines: the per-core yardstick for a scenario.

The event-making of the original producer (darooghe_pulse.py, see the seed README), without
Kafka: 50 merchants and 1,000 customers are lists of dicts built at start; each event is a dict
with `random` choices per field, `uuid.uuid4()`, a `datetime` ISO timestamp spread over the last
7 days, serialised with `json.dumps`, one line a event on standard output. `benches/python_baseline.py`
produces the same events to Kafka; `benches/seed_port.rhai` is the same generator in Rhai, so

    python3 benches/python_events.py -n 100000 >/dev/null
    sim sample benches/seed_port.rhai -n 100000 --workers 1 >/dev/null

compare the two languages making the same events (`cargo run --release --example script_speed`
runs both and prints the ratio). With `--time`, the seconds spent making and writing the events
(after the pools are built) go to standard error as one JSON line.
"""

import argparse
import json
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

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


def build_merchants(count=MERCHANT_COUNT):
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


def build_customers(count=CUSTOMER_COUNT):
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


def generate_event(merchants, customers, timestamp):
    """One transaction event, as the seed's producer makes it."""
    merchant = random.choice(merchants)
    customer = random.choice(customers)
    amount = random.randint(50000, 2000000)
    commission = int(amount * 0.02)
    vat = int(amount * 0.09)
    declined = random.random() < DECLINED_RATE
    risky = random.random() < FRAUD_RATE
    base = merchant["location"] if random.random() < 0.5 else customer["home"]
    return {
        "transaction_id": str(uuid.uuid4()),
        "timestamp": timestamp.isoformat(timespec="milliseconds") + "Z",
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


def historical_times(count):
    """`count` event times over the past 7 days, as the seed's backfill draws them."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    start = now - timedelta(days=BACKFILL_DAYS)
    for _ in range(count):
        yield generate_random_datetime(start, now)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=10)
    parser.add_argument("--time", action="store_true", help="print the seconds taken to stderr")
    args = parser.parse_args()
    merchants, customers = build_merchants(), build_customers()
    out = sys.stdout
    started = time.perf_counter()
    for timestamp in historical_times(args.count):
        out.write(json.dumps(generate_event(merchants, customers, timestamp)))
        out.write("\n")
    out.flush()
    if args.time:
        seconds = time.perf_counter() - started
        print(json.dumps({"events": args.count, "seconds": round(seconds, 4)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
