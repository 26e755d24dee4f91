//! The faults a trial injects and heals: librdkafka's mock cluster through its fault API (a
//! broker down, a leader moved, request errors, a slow round trip), and Tansu as a child process
//! (paused with SIGSTOP, or killed and started again on the same port).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// Brokers of the mock cluster: enough for a leader to move and for replication 3.
const MOCK_BROKERS: i32 = 3;
/// Partitions of a topic made on Tansu, as `sim`'s default.
const PARTITIONS: i32 = 3;

/// Something that goes wrong while `sim` runs, and is then put right.
pub trait Fault {
    /// What it is, for the table and for failure messages.
    fn name(&self) -> String;
    /// The partitions it stops, where the next delivery after healing is looked for (`None`:
    /// all of them).
    fn partitions(&self) -> Option<Vec<i32>>;
    /// Makes it happen.
    fn inject(&mut self) -> Result<(), String>;
    /// Puts it right. A fault that heals by itself (a leader moved, errors used up) does nothing.
    fn heal(&mut self) -> Result<(), String>;
    /// Whether the broker may append again a Produce request librdkafka retries after this
    /// fault, though it appended it the first time: the idempotent producer's sequence numbers
    /// would tell a real broker, but not this one. Then a trial takes such copies out of its
    /// verdict (see [`super::TrialReport::replayed`]).
    fn replays_retries(&self) -> bool {
        false
    }
}

/// A three-broker mock cluster in this process; topics made here have replication 3 and
/// partition `p` led by broker `p + 1`, so a fault on one broker stops one partition.
pub struct MockFaults {
    cluster: MockCluster<'static, DefaultProducerContext>,
    address: String,
}

impl MockFaults {
    /// Starts the cluster.
    pub fn start() -> Result<Self, String> {
        let cluster = MockCluster::new(MOCK_BROKERS).map_err(|e| format!("mock cluster: {e}"))?;
        let address = cluster.bootstrap_servers();
        Ok(Self { cluster, address })
    }

    /// The bootstrap servers, all three brokers.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Creates `topic` with `partitions` partitions. The mock cluster answers no CreateTopics
    /// request, so `sim` must find its topic there (it does not recreate it with
    /// `EVENT_INIT_MODE=skip`).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), String> {
        let fail = |e: rdkafka::error::KafkaError| format!("creating {topic} on the mock: {e}");
        self.cluster
            .create_topic(topic, partitions, MOCK_BROKERS)
            .map_err(fail)?;
        for partition in 0..partitions {
            self.cluster
                .partition_leader(topic, partition, Some(partition % MOCK_BROKERS + 1))
                .map_err(fail)?;
        }
        Ok(())
    }

    /// `fault` on `topic` of this cluster.
    pub fn fault<'a>(&'a self, topic: &str, fault: MockFault) -> impl Fault + 'a {
        OnMock {
            mock: self,
            topic: topic.to_string(),
            fault,
        }
    }
}

/// The faults of the mock cluster's API.
#[derive(Debug, Clone)]
pub enum MockFault {
    /// The broker closes its connections and refuses new ones until healed. Leadership does not
    /// move: the partition it leads waits for it.
    BrokerDown(i32),
    /// The partition's leadership moves to another broker (at once; nothing to heal).
    LeaderMoved {
        /// The partition.
        partition: i32,
        /// The broker that leads it from then on.
        to: i32,
    },
    /// The next Produce requests, whichever broker they reach, fail with these errors in turn.
    ProduceErrors {
        /// For the table, e.g. `request timed out x5`.
        label: String,
        /// The errors, first first.
        errors: Vec<RDKafkaRespErr>,
    },
    /// Every request to the broker takes this much longer until healed.
    SlowRoundTrip {
        /// The broker.
        broker: i32,
        /// The delay added to each round trip.
        delay: Duration,
    },
}

struct OnMock<'a> {
    mock: &'a MockFaults,
    topic: String,
    fault: MockFault,
}

impl Fault for OnMock<'_> {
    fn name(&self) -> String {
        match &self.fault {
            MockFault::BrokerDown(b) => format!("mock: broker {b} down"),
            MockFault::LeaderMoved { partition, to } => {
                format!("mock: leader of partition {partition} moved to broker {to}")
            }
            MockFault::ProduceErrors { label, .. } => format!("mock: produce errors ({label})"),
            MockFault::SlowRoundTrip { broker, delay } => {
                format!("mock: broker {broker} round trip +{} ms", delay.as_millis())
            }
        }
    }

    fn partitions(&self) -> Option<Vec<i32>> {
        match &self.fault {
            // Partition p is led by broker p + 1 (see MockFaults::create_topic).
            MockFault::BrokerDown(b) | MockFault::SlowRoundTrip { broker: b, .. } => {
                Some(vec![b - 1])
            }
            MockFault::LeaderMoved { partition, .. } => Some(vec![*partition]),
            MockFault::ProduceErrors { .. } => None,
        }
    }

    fn inject(&mut self) -> Result<(), String> {
        let cluster = &self.mock.cluster;
        let done = match &self.fault {
            MockFault::BrokerDown(b) => cluster.broker_down(*b),
            MockFault::LeaderMoved { partition, to } => {
                cluster.partition_leader(&self.topic, *partition, Some(*to))
            }
            MockFault::ProduceErrors { errors, .. } => {
                cluster.request_errors(RDKafkaApiKey::Produce, errors);
                Ok(())
            }
            MockFault::SlowRoundTrip { broker, delay } => {
                cluster.broker_round_trip_time(*broker, *delay)
            }
        };
        done.map_err(|e| format!("{}: {e}", self.name()))
    }

    fn heal(&mut self) -> Result<(), String> {
        let cluster = &self.mock.cluster;
        let done = match &self.fault {
            MockFault::BrokerDown(b) => cluster.broker_up(*b),
            MockFault::SlowRoundTrip { broker, .. } => {
                cluster.broker_round_trip_time(*broker, Duration::ZERO)
            }
            MockFault::LeaderMoved { .. } | MockFault::ProduceErrors { .. } => Ok(()),
        };
        done.map_err(|e| format!("healing {}: {e}", self.name()))
    }

    /// A broker taken down closes its connections, dropping the answers it had not sent yet to
    /// Produce requests it had appended; librdkafka sends them again, and the mock cluster
    /// appends them again: it checks an idempotent producer's sequence numbers only for a
    /// transactional one (`rd_kafka_mock_validate_records` in librdkafka's `rdkafka_mock.c`
    /// returns at once without a TransactionalId), so it never drops a retried batch of `sim`.
    fn replays_retries(&self) -> bool {
        matches!(self.fault, MockFault::BrokerDown(_))
    }
}

/// Tansu, a Kafka-compatible broker, as a child process with in-memory storage (the only storage
/// the test install has: `cargo install tansu --features dynostore` builds neither the Postgres
/// nor the SQLite engine), on a port it keeps when started again.
pub struct TansuProcess {
    binary: PathBuf,
    address: String,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl TansuProcess {
    /// Starts `binary` on a free local port, its logs in `dir`.
    pub fn start(binary: &Path, dir: &Path) -> Result<Self, String> {
        let mut last = String::new();
        // Another process may take the port between the probe and Tansu's bind: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("probing for a free port: {e}"))?
                .port();
            let mut tansu = Self {
                binary: binary.to_path_buf(),
                address: format!("127.0.0.1:{port}"),
                dir: dir.to_path_buf(),
                child: None,
                starts: 0,
            };
            match tansu.spawn() {
                Ok(()) => return Ok(tansu),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts the process on this broker's address and waits until it accepts connections.
    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let url = format!("tcp://{}", self.address);
        let log_path = self.dir.join(format!("tansu-{}.log", self.starts));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new(&self.binary)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.binary.display()))?;
        let socket: SocketAddr = self.address.parse().map_err(|e| format!("{e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("tansu exited with {status}:\n{log}"));
            }
            if TcpStream::connect_timeout(&socket, Duration::from_millis(200)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("tansu did not accept on {} in 30 s", self.address));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The bootstrap address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The current process's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("tansu-{}.log", self.starts)))
            .unwrap_or_default()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process.
    fn signal(&self, signal: &str) -> Result<(), String> {
        let child = self.child.as_ref().ok_or("tansu is not running")?;
        send_signal(child.id(), signal)
    }

    /// Kills the process, and waits for it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Creates `topic` with `sim`'s defaults (3 partitions, replication 1).
    pub fn create_topic(&self, topic: &str) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .create()
            .map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| e.to_string())?;
        let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = runtime
            .block_on(admin.create_topics([&new], &options))
            .map_err(|e| format!("creating {topic} on tansu: {e}"))?;
        match results.into_iter().next() {
            Some(Err((_, code))) => Err(format!("creating {topic} on tansu: {code}")),
            _ => Ok(()),
        }
    }

    /// `fault` on this broker; `topic` is made again after a restart when given (what an
    /// operator of a broker that lost its storage would do).
    pub fn fault(&mut self, fault: TansuFault) -> impl Fault + '_ {
        OnTansu { tansu: self, fault }
    }
}

impl Drop for TansuProcess {
    fn drop(&mut self) {
        // A stopped process ignores SIGKILL until continued on some systems: continue it first.
        let _ = self.signal("CONT");
        self.kill();
    }
}

/// Sends `signal` (a name `kill -s` knows: `INT`, `TERM`, `STOP`, `CONT`) to process `pid`.
pub fn send_signal(pid: u32, signal: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .map_err(|e| format!("running kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -s {signal} {pid} failed: {status}"))
    }
}

/// What can happen to Tansu.
#[derive(Debug, Clone)]
pub enum TansuFault {
    /// SIGSTOP, then SIGCONT when healed: the broker freezes with its connections open.
    Paused,
    /// SIGKILL, then a new process on the same port when healed. With memory storage it comes
    /// back empty: without the topic, unless `recreate` names it.
    Restarted {
        /// The topic to make again after the restart.
        recreate: Option<String>,
    },
}

struct OnTansu<'a> {
    tansu: &'a mut TansuProcess,
    fault: TansuFault,
}

impl Fault for OnTansu<'_> {
    fn name(&self) -> String {
        match &self.fault {
            TansuFault::Paused => "tansu: SIGSTOP".into(),
            TansuFault::Restarted { recreate: None } => "tansu: killed, restarted".into(),
            TansuFault::Restarted { recreate: Some(_) } => {
                "tansu: killed, restarted, topic made again".into()
            }
        }
    }

    fn partitions(&self) -> Option<Vec<i32>> {
        None
    }

    fn inject(&mut self) -> Result<(), String> {
        match &self.fault {
            TansuFault::Paused => self.tansu.signal("STOP"),
            TansuFault::Restarted { .. } => {
                self.tansu.kill();
                Ok(())
            }
        }
    }

    fn heal(&mut self) -> Result<(), String> {
        match &self.fault {
            TansuFault::Paused => self.tansu.signal("CONT"),
            TansuFault::Restarted { recreate } => {
                self.tansu.spawn()?;
                match recreate {
                    Some(topic) => self.tansu.create_topic(topic),
                    None => Ok(()),
                }
            }
        }
    }
}
