#!/usr/bin/env python3
"""Parses a Prometheus text exposition for the integration tests, with the parser of the official
Python client (prometheus_client), and prints it as one JSON object.

Reads the exposition from standard input and prints

    {family_name: {"type": TYPE, "samples": [[sample_name, {label: value}, value], ...]}}

Family names are the parser's: a counter's family drops the `_total` of its samples
(`demo_total` is a sample of the family `demo`), a histogram's holds its `_bucket`, `_sum` and
`_count` samples. Values are JSON numbers, except the ones JSON cannot hold, which are the strings
"NaN", "+Inf" and "-Inf".

The parser yields an untyped metric with several label sets as one family a sample; those are
merged back into one family here (two families of one name but different types are an error).

Exits with status 1 and the parser's error on standard error when the text is not a valid
exposition. The Python parser is a second opinion beside Prometheus's own scrape, not a strict
validator: it accepts some text Prometheus would reject.
"""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def json_value(value):
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def main():
    text = sys.stdin.read()
    families = {}
    try:
        for family in text_string_to_metric_families(text):
            entry = families.setdefault(family.name, {"type": family.type, "samples": []})
            if entry["type"] != family.type:
                raise ValueError(
                    f"metric family {family.name!r} is both {entry['type']} and {family.type}"
                )
            entry["samples"].extend(
                [sample.name, dict(sample.labels), json_value(sample.value)]
                for sample in family.samples
            )
    except Exception as err:  # the parser raises ValueError, and others on odd input
        print(f"parse_exposition.py: not a valid exposition: {err!r}", file=sys.stderr)
        sys.exit(1)
    json.dump(families, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
