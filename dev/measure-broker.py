#!/usr/bin/env python3
"""Measures the embedded broker (and Tansu, when installed) for the README's broker section.

    cargo build --release && python3 dev/measure-broker.py [--events 1000000] [--tansu PATH]

Prints, and asserts nothing:
  - startup: from spawning `sim run` to its "embedded broker at" line (median of 5), against the
    same with `--sink stdout` (no broker), and for Tansu, from spawning `tansu broker` to its
    first answered Metadata request;
  - memory: peak RSS of `sim backfill --count N` into the embedded broker (which holds all N in
    memory) against the same into `--sink stdout` (sim alone), and Tansu's RSS after the same
    backfill into it (memory storage).
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "target", "release", "sim")
NOW = "2026-01-01T00:00:00Z"


def load():
    return os.getloadavg()[0]


def startup_embedded():
    """Seconds from spawn to the broker's address line."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [SIM, "run", "scripts/hello.rhai", "--set", "backfill=0", "--duration", "0"],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    elapsed = None
    for line in proc.stderr:
        if line.startswith("embedded broker at "):
            elapsed = time.monotonic() - started
    proc.wait()
    return elapsed


def startup_stdout():
    """Seconds from spawn to exit of the same command with no broker (the process's own start)."""
    started = time.monotonic()
    subprocess.run(
        [SIM, "run", "scripts/hello.rhai", "--set", "backfill=0", "--duration", "0",
         "--sink", "stdout"],
        cwd=ROOT, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True,
    )
    return time.monotonic() - started


def peak_rss_mib(args):
    """Runs sim with `args` under /usr/bin/time; returns (peak RSS MiB, sim's last stderr line)."""
    proc = subprocess.run(["/usr/bin/time", "-f", "PEAK_RSS_KIB %M", SIM] + args, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = proc.stderr.strip().splitlines()
    kib = next(int(l.split()[1]) for l in lines if l.startswith("PEAK_RSS_KIB "))
    last = [l for l in lines if not l.startswith("PEAK_RSS_KIB ")][-1:]
    return kib / 1024, "".join(last)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tansu(binary, events):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    started = time.monotonic()
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        while True:
            try:
                admin.list_topics(timeout=1)
                break
            except Exception:
                if time.monotonic() - started > 60:
                    raise
        print(f"tansu startup (spawn to first Metadata answer): {time.monotonic() - started:.2f} s")
        subprocess.run(
            [SIM, "backfill", "scripts/darooghe.rhai", "--count", str(events), "--seed", "1",
             "--now", NOW, "--brokers", f"127.0.0.1:{port}"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
        )
        with open(f"/proc/{proc.pid}/status") as status:
            fields = dict(re.findall(r"^(\w+):\s+(\d+) kB", status.read(), re.M))
        print(f"tansu RSS after {events} events: {int(fields['VmRSS']) / 1024:.0f} MiB "
              f"(peak {int(fields['VmHWM']) / 1024:.0f} MiB)")
    finally:
        proc.terminate()
        proc.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tansu", default=shutil.which("tansu"))
    args = parser.parse_args()
    print(f"load average {load():.2f}")

    embedded = [startup_embedded() for _ in range(5)]
    plain = [startup_stdout() for _ in range(5)]
    print(f"sim run to 'embedded broker at': median {statistics.median(embedded) * 1000:.0f} ms; "
          f"the same run to exit with --sink stdout (no broker): "
          f"{statistics.median(plain) * 1000:.0f} ms")

    backfill = ["backfill", "scripts/darooghe.rhai", "--count", str(args.events), "--seed", "1",
                "--now", NOW]
    rss, last = peak_rss_mib(backfill + ["--sink", "stdout"])
    print(f"sim backfill {args.events} to stdout (no broker): peak RSS {rss:.0f} MiB")
    rss_broker, last = peak_rss_mib(backfill)
    print(f"sim backfill {args.events} into the embedded broker: peak RSS {rss_broker:.0f} MiB "
          f"({last})")
    rss_lz4, last = peak_rss_mib(backfill + ["-X", "compression.type=lz4"])
    print(f"the same with -X compression.type=lz4: peak RSS {rss_lz4:.0f} MiB ({last})")

    if args.tansu:
        tansu(args.tansu, args.events)
    else:
        print("tansu not installed: skipped (dev/install-test-deps.sh installs it)")
    print(f"load average {load():.2f}")


if __name__ == "__main__":
    sys.exit(main())
