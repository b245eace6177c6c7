//! This instance's Prometheus recorder (never installed as the global one): counters
//! and gauges are set in it at each scrape, and it renders the text format.

use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::metrics::{ALL, Def, Type};

static METADATA: Metadata<'static> = Metadata::new("respite", Level::INFO, Some("respite"));

/// One instance's recorder (never installed as the global one).
pub struct Exporter {
    recorder: PrometheusRecorder,
    pub(super) handle: PrometheusHandle,
}

impl Exporter {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        // The snapshot's families are written by `snapshot.rs`, not by the recorder.
        for d in ALL.iter().filter(|d| !d.polled) {
            let help = d.help.into();
            match d.kind {
                Type::Counter => recorder.describe_counter(d.name.into(), None, help),
                Type::Gauge => recorder.describe_gauge(d.name.into(), None, help),
                Type::Histogram => {} // rendered from our own buckets
            }
        }
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    fn key(def: &Def, labels: &[(&'static str, &str)]) -> Key {
        debug_assert!(
            def.labels.len() == labels.len()
                && def.labels.iter().zip(labels).all(|(a, (b, _))| a == b),
            "{}: labels {labels:?} differ from the declared {:?}",
            def.name,
            def.labels
        );
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect();
        Key::from_parts(def.name, labels)
    }

    pub(super) fn counter(&self, def: &Def, labels: &[(&'static str, &str)], value: u64) {
        debug_assert_eq!(def.kind, Type::Counter, "{}", def.name);
        self.recorder
            .register_counter(&Self::key(def, labels), &METADATA)
            .absolute(value);
    }

    pub(super) fn gauge(&self, def: &Def, labels: &[(&'static str, &str)], value: f64) {
        debug_assert_eq!(def.kind, Type::Gauge, "{}", def.name);
        self.recorder
            .register_gauge(&Self::key(def, labels), &METADATA)
            .set(value);
    }
}
