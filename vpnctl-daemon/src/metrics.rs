//! What `vpnctld`'s and `vpnctl-node`'s `/metrics` have in common: the
//! [`prometheus_client`] registry rendered in the Prometheus text format 0.0.4
//! (`# TYPE x_total counter`, as Prometheus and every scraper read it), and one set of
//! latency buckets.
//!
//! Counters are registered without their `_total` suffix: the encoder adds it (and a
//! debug build panics on a counter registered with it). Help texts are registered
//! without their final period: the registry adds it. (A [`Collector`] writes both as
//! given.)
//!
//! [`Collector`]: prometheus_client::collector::Collector

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Latency buckets from 1 ms to 10 s (seconds).
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of seconds over [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Appends the exposition of `registry` to `out`.
pub fn encode(out: &mut String, registry: &Registry) {
    // Writing into a String cannot fail; a collector that fails leaves its part out.
    if let Err(e) = prometheus_text::encode(out, registry) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    #[test]
    fn text_format_with_total_suffixes_and_escaped_labels() {
        let mut registry = Registry::default();
        let things: Family<[(&'static str, String); 1], Counter> = Family::default();
        registry.register("x", "Things", things.clone());
        let latency = latency_histogram();
        registry.register("lat_seconds", "Latency", latency.clone());
        things
            .get_or_create(&[("node", "fra\"1".to_owned())])
            .inc_by(12);
        latency.observe(0.004);
        latency.observe(3.0);
        let mut out = String::new();
        encode(&mut out, &registry);
        for line in [
            "# HELP x_total Things.\n",
            "# TYPE x_total counter\n",
            "x_total{node=\"fra\\\"1\"} 12\n",
            "# TYPE lat_seconds histogram\n",
            "lat_seconds_bucket{le=\"0.005\"} 1\n",
            "lat_seconds_bucket{le=\"2.5\"} 1\n",
            "lat_seconds_bucket{le=\"+Inf\"} 2\n",
            "lat_seconds_count 2\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
        assert!(!out.contains("# EOF"), "{out}");
    }
}
