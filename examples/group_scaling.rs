//! What a group (`--group`) costs and what it buys: `sim backfill scripts/darooghe.rhai
//! --count N` into librdkafka's mock cluster (the embedded broker's engine, here in this
//! process, with the group's coordination topic made beforehand), in six variants:
//!
//! - one plain instance, one worker, and the same in a group of one (the overhead of group mode:
//!   a poll between batches and a position record every second, after a flush);
//! - groups of two and three instances, one worker each;
//! - one plain instance with two workers (the same cores as two instances);
//! - a group of one with `--exactly-once` (a transaction committed every second: its flush).
//!
//! Every figure is the topic's: its high watermarks, sampled every 50 ms, and the messages per
//! second between the moments it held 30% and 90% of the N events. That leaves out the seconds
//! members take to join and the first rebalances (which move shards while the group forms), as
//! a long run would. The group runs the eager protocol (`partition.assignment.strategy=
//! roundrobin`): the mock cluster is slow to finish cooperative rebalances. The variants take
//! turns, round after round; the figure is each variant's median. It measures; it asserts
//! nothing.
//!
//! ```text
//! cargo run --release --example group_scaling -- 1000000 3
//! cargo run --release --example group_scaling -- 300000 9 0,1   # only variants 0 and 1
//! ```

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;

#[path = "support/mod.rs"]
mod support;

use support::*;

const NOW: &str = "2024-01-15T10:00:00Z";

/// Shards of each group's timeline: sim's default.
const SHARDS: i32 = 64;

/// One way to run the backfill: instances, workers each, in a group or not.
#[derive(Debug, Clone, Copy)]
struct Variant {
    name: &'static str,
    instances: usize,
    workers: usize,
    group: bool,
    exactly_once: bool,
}

const VARIANTS: [Variant; 6] = [
    Variant {
        name: "plain, 1 instance x 1 worker",
        instances: 1,
        workers: 1,
        group: false,
        exactly_once: false,
    },
    Variant {
        name: "group of 1, 1 worker",
        instances: 1,
        workers: 1,
        group: true,
        exactly_once: false,
    },
    Variant {
        name: "group of 2, 1 worker each",
        instances: 2,
        workers: 1,
        group: true,
        exactly_once: false,
    },
    Variant {
        name: "group of 3, 1 worker each",
        instances: 3,
        workers: 1,
        group: true,
        exactly_once: false,
    },
    Variant {
        name: "plain, 1 instance x 2 workers",
        instances: 1,
        workers: 2,
        group: false,
        exactly_once: false,
    },
    Variant {
        name: "group of 1, exactly once",
        instances: 1,
        workers: 1,
        group: true,
        exactly_once: true,
    },
];

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args
        .next()
        .map_or(Ok(200_000), |n| n.replace('_', "").parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |n| n.parse())?;
    let chosen: Vec<usize> = match args.next() {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => (0..VARIANTS.len()).collect(),
    };
    println!("load at start: {}", uptime());
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sim = build_sim(&root)?;
    let script = root.join("scripts/darooghe.rhai");
    let mut rates = vec![Vec::new(); VARIANTS.len()];
    let mut run = 0;
    for round in 0..rounds {
        let mut line = format!("round {}:", round + 1);
        for k in 0..chosen.len() {
            let v = chosen[(k + round) % chosen.len()];
            run += 1;
            let rate = measure(&sim, &script, count, VARIANTS[v], run)?;
            line += &format!(" | {} {rate:.0}", VARIANTS[v].name);
            rates[v].push(rate);
        }
        println!("{line}");
    }
    let base = median(&mut rates[chosen[0]]);
    println!("median of {rounds} rounds of {count} arrivals (darooghe), events/s:");
    for &v in &chosen {
        let variant = VARIANTS[v];
        let rate = median(&mut rates[v]);
        println!("  {:<32} {rate:>8.0}  {:.2}x", variant.name, rate / base);
    }
    println!("load at end: {}", uptime());
    Ok(())
}

/// One run of `variant` on a fresh mock cluster; its events per second.
fn measure(
    sim: &Path,
    script: &Path,
    count: u64,
    variant: Variant,
    run: usize,
) -> Result<f64, Failure> {
    let mock = MockCluster::new(1)?;
    let topic = format!("scale{run}");
    let group = format!("scale{run}");
    mock.create_topic(&topic, 3, 1)?;
    if variant.group {
        mock.create_topic(&format!("sim.{group}.shards"), SHARDS, 1)?;
    }
    let brokers = mock.bootstrap_servers();
    let members: Vec<Child> = (0..variant.instances)
        .map(|_| {
            let mut cmd = Command::new(sim);
            cmd.arg("backfill")
                .arg(script)
                .args(["--count", &count.to_string(), "--seed", "1", "--now", NOW])
                .args(["--brokers", &brokers, "--topic", &topic])
                .args(["--workers", &variant.workers.to_string()])
                .args(["--set", "fraud_rate=0"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            for var in SETTING_VARS
                .iter()
                .chain(["SIM_WORKERS", "SIM_GROUP"].iter())
            {
                cmd.env_remove(var);
            }
            if variant.group {
                cmd.args(["--group", &group]);
                cmd.args(["-X", "partition.assignment.strategy=roundrobin"]);
            }
            if variant.exactly_once {
                cmd.arg("--exactly-once");
            }
            cmd.spawn()
        })
        .collect::<Result<_, _>>()?;
    let rate = watch_topic(&brokers, &topic, count)?;
    let mut events = 0;
    for member in members {
        let output = member.wait_with_output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let ((made, _, _), (_, delivered, _)) =
            parse_report(&stderr).ok_or_else(|| format!("no report in:\n{stderr}"))?;
        if !output.status.success() || delivered != made {
            return Err(format!("a member did not deliver everything:\n{stderr}").into());
        }
        events += made;
    }
    if events < count {
        return Err(format!("{events} events for {count} arrivals").into());
    }
    Ok(rate)
}

/// Samples the topic's high watermarks until they hold `count` messages; the messages per second
/// between the moments they held 30% and 90% of them.
fn watch_topic(brokers: &str, topic: &str, count: u64) -> Result<f64, Failure> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let (from, to) = (count * 3 / 10, count * 9 / 10);
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let mut held = 0;
        for partition in 0..3 {
            // The high watermark: the mock cluster deletes a partition's oldest beyond 5 MiB.
            let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(5))?;
            held += high.max(0) as u64;
        }
        let now = Instant::now();
        if held >= from && first.is_none() {
            first = Some((now, held));
        }
        if held >= to {
            let (start, at_start) = first.unwrap_or((now, held));
            let seconds = now.duration_since(start).as_secs_f64();
            return Ok((held - at_start) as f64 / seconds.max(1e-3));
        }
        if now > deadline {
            return Err(format!("the topic held {held} of {count} after 600 s").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
