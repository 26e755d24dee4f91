//! The embedded broker: librdkafka's mock cluster, in process.
//!
//! It speaks the real Kafka wire protocol on a local port, so kcat or any client can consume from
//! it while `sim` runs. It lives as long as this value; dropping it stops the broker.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::sink::{SinkError, TopicSpec};

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
