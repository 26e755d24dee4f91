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
        if source.kind() == std::io::ErrorKind::BrokenPipe {
            return SinkError::ReaderGone {
                target: self.target.clone(),
            };
        }
        SinkError::Io {
            target: self.target.clone(),
            source,
        }
    }
}

impl Sink for JsonLinesSink {
    fn send(&mut self, record: Record<'_>) -> Result<(), SinkError> {
        let written = self
            .out
            .write_all(record.payload)
            .and_then(|()| self.out.write_all(b"\n"));
        match written {
            Ok(()) => {
                self.counters.written();
                Ok(())
            }
            Err(err) => {
                self.counters.produced();
                self.counters.failed();
                Err(self.io_error(err))
            }
        }
    }

    fn idle(&mut self) -> Result<(), SinkError> {
        if self.out.buffer().is_empty() {
            return Ok(());
        }
        self.out.flush().map_err(|err| self.io_error(err))
    }

    fn close(&mut self, _timeout: Duration) -> Result<DeliveryAccount, SinkError> {
        self.out.flush().map_err(|err| self.io_error(err))?;
        Ok(self.counters.account())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer whose bytes the test can read while the sink holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            crate::sync::lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_is_buffered_until_the_stream_goes_idle() {
        let out = Shared::default();
        let mut sink = JsonLinesSink::new(
            Box::new(out.clone()),
            "test".into(),
            Arc::new(DeliveryCounters::default()),
        );
        let record = Record {
            key: None,
            payload: b"{\"a\":1}",
            timestamp_ms: 0,
            revision: 1,
            fraud_pattern: None,
        };
        sink.send(record).unwrap();
        assert!(crate::sync::lock(&out.0).is_empty(), "written in a block");
        sink.idle().unwrap();
        assert_eq!(*crate::sync::lock(&out.0), b"{\"a\":1}\n");
    }
}
