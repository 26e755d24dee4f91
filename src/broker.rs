//! The embedded broker: librdkafka's mock cluster, in process.
//!
//! It speaks the real Kafka wire protocol on a local port, so kcat or any client can consume from
//! it while `sim` runs. It lives as long as this value; dropping it stops the broker, after a
//! short grace in which attached consumers can still fetch the last messages.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::sink::{SinkError, TopicSpec};

/// How long the broker keeps serving once dropped. It is dropped right after the producer's final
/// flush, so the last messages were delivered only moments before; without a grace, a consumer
/// that is a little behind, or waiting out librdkafka's default `fetch.wait.max.ms` (500 ms, as
/// kcat does), loses messages the final account reports as delivered.
pub const DRAIN_GRACE: Duration = Duration::from_millis(1500);

/// A one-broker Kafka cluster inside this process.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts the broker and creates `topic` on it.
    pub fn start(topic: &TopicSpec) -> Result<Self, SinkError> {
        let cluster = MockCluster::new(1).map_err(|e| SinkError::Embedded(e.to_string()))?;
        // One broker holds every replica, so the replication factor is 1 whatever was asked.
        cluster
            .create_topic(&topic.name, topic.partitions, 1)
            .map_err(|e| SinkError::Embedded(format!("creating topic {}: {e}", topic.name)))?;
        Ok(Self { cluster })
    }

    /// The bootstrap address clients connect to, e.g. `127.0.0.1:39341`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // Everything delivered is in the broker's log by now; let consumers take it before the
        // cluster (dropped after this) closes its port. A second Ctrl-C still exits at once.
        std::thread::sleep(DRAIN_GRACE);
    }
}
