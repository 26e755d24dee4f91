//! JSON lines on standard output or in a file: one event a line, for `sample`, pipes and tests.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{DeliveryAccount, DeliveryCounters, Record, Sink, SinkError};

/// Writes each record's payload followed by a newline. A record counts as delivered once written
/// to the buffer; `close` flushes, and a failed flush is an error (nothing is silently dropped).
pub struct JsonLinesSink {
    out: BufWriter<Box<dyn Write + Send>>,
    target: String,
    counters: Arc<DeliveryCounters>,
}

impl JsonLinesSink {
    /// JSON lines on standard output.
    pub fn stdout(counters: Arc<DeliveryCounters>) -> Self {
        Self::new(
            Box::new(std::io::stdout()),
            "standard output".into(),
            counters,
        )
    }

    /// JSON lines in `path`, created or truncated.
    pub fn file(path: &Path, counters: Arc<DeliveryCounters>) -> Result<Self, SinkError> {
        let file = File::create(path).map_err(|source| SinkError::Io {
            target: path.display().to_string(),
            source,
        })?;
        Ok(Self::new(
            Box::new(file),
            path.display().to_string(),
            counters,
        ))
    }

    fn new(out: Box<dyn Write + Send>, target: String, counters: Arc<DeliveryCounters>) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, out),
            target,
            counters,
        }
    }

    fn io_error(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            target: self.target.clone(),
            source,
        }
    }
}

impl Sink for JsonLinesSink {
    fn send(&mut self, record: Record<'_>) -> Result<(), SinkError> {
        self.counters.produced();
        let written = self
            .out
            .write_all(record.payload)
            .and_then(|()| self.out.write_all(b"\n"));
        match written {
            Ok(()) => {
                self.counters.delivered();
                Ok(())
            }
            Err(err) => {
                self.counters.failed();
                Err(self.io_error(err))
            }
        }
    }

    fn close(&mut self, _timeout: Duration) -> Result<DeliveryAccount, SinkError> {
        self.out.flush().map_err(|err| self.io_error(err))?;
        Ok(self.counters.account())
    }
}
