//! Writing metric families at scrape time from values read then: counters, gauges and
//! histograms with their label sets, through prometheus-client's encoder (so names, escaping and
//! the text format are the library's, not ours).

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::metrics::HistogramSnapshot;

/// A sample's labels: name and value pairs.
pub type Labels = Vec<(&'static str, String)>;

/// Writes families into one scrape.
pub struct Families<'a> {
    encoder: DescriptorEncoder<'a>,
}

impl<'a> Families<'a> {
    /// Writes through `encoder`.
    pub fn new(encoder: DescriptorEncoder<'a>) -> Self {
        Self { encoder }
    }

    /// A counter family; `name` without `_total`, which the text format adds.
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(Labels, u64)]) -> fmt::Result {
        let mut family = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in samples {
            ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }

    /// A gauge family.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &[(Labels, f64)]) -> fmt::Result {
        let mut family = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in samples {
            ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }

    /// A histogram family with one series.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &Labels,
        snapshot: &HistogramSnapshot,
    ) -> fmt::Result {
        let mut family = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        family
            .encode_family(labels)?
            .encode_histogram::<NoLabelSet>(snapshot.sum, snapshot.count, &snapshot.buckets, None)
    }
}

/// `labels` with one more pair.
pub fn with(labels: &Labels, name: &'static str, value: impl Into<String>) -> Labels {
    let mut labels = labels.clone();
    labels.push((name, value.into()));
    labels
}
