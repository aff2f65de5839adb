//! Latency histograms, in microseconds.

use hdrhistogram::Histogram;

/// From 1 µs to a minute, with three significant digits.
pub(crate) fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}
