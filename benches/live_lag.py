#!/usr/bin/env python3
"""How late live events leave after a backfill: runs `sim run` into standard output and stamps
each line as it arrives, then compares each live event's own timestamp with that arrival time.

    python3 benches/live_lag.py [SIM_BINARY] [BACKFILL_ARRIVALS] [SECONDS]

Defaults: target/release/sim, 100000 arrivals of darooghe, 5 s of live stream at 6000/min.
Prints the lag (arrival on the pipe minus the event's timestamp) of the first and last live
events and its median and 99th percentile, in milliseconds.
"""
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/sim"
arrivals = sys.argv[2] if len(sys.argv) > 2 else "100000"
seconds = sys.argv[3] if len(sys.argv) > 3 else "5"
env = dict(os.environ, BACKFILL=arrivals, EVENT_RATE="6000", PEAK_FACTOR="1")
started = time.time()
proc = subprocess.Popen(
    [binary, "run", "scripts/darooghe.rhai", "--sink", "stdout", "--no-reload",
     "--duration", seconds],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True, bufsize=1)
lags = []  # (event timestamp, seen on the pipe), live events only
for line in iter(proc.stdout.readline, ""):
    seen = time.time()
    stamp = datetime.fromisoformat(json.loads(line)["timestamp"].replace("Z", "+00:00"))
    stamp = stamp.replace(tzinfo=stamp.tzinfo or timezone.utc).timestamp()
    if stamp >= started:  # a live event: the backfill's lie before the run started
        lags.append((stamp, seen))
proc.wait()
if not lags:
    sys.exit("no live events")


def summary(name, pairs):
    ms = sorted((seen - stamp) * 1000 for stamp, seen in pairs)
    if ms:
        print(f"  {name}: {len(ms)} events, lag ms median {ms[len(ms) // 2]:.0f}, "
              f"p99 {ms[int(len(ms) * 0.99)]:.0f}, max {ms[-1]:.0f}")


# Events stamped after the first live event was seen fell due after the backfill ended: these
# should leave at their timestamps. Those before fell due while it ran, and leave at once after.
handover = lags[0][1]
print(f"{binary}: {arrivals} backfilled arrivals, {len(lags)} live events; "
      f"lag of the first {(lags[0][1] - lags[0][0]) * 1000:.0f} ms, "
      f"of the last {(lags[-1][1] - lags[-1][0]) * 1000:.0f} ms")
summary("due during the backfill", [p for p in lags if p[0] <= handover])
summary("due after it", [p for p in lags if p[0] > handover])
