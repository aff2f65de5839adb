//! The disk's floor: what one durable write costs where the database is.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::histogram::new_histogram;

/// The floor of a durable commit: appending 4 KiB to a file and `fdatasync`ing it, one at a
/// time, as a commit of the write-ahead log does. No refresh acknowledged after its commit can
/// answer faster than this, whatever the server does.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DiskFloor {
    pub(crate) syncs: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

/// Measures [`DiskFloor`] in `dir` for about `seconds`.
pub(crate) fn disk_floor(dir: &Path, seconds: f64) -> anyhow::Result<DiskFloor> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5Au8; 4096];
    let mut histogram = new_histogram()?;
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut syncs = 0;
    while Instant::now() < until {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        histogram.record((started.elapsed().as_micros() as u64).max(1))?;
        syncs += 1;
        // Start over now and then, as the log does after a checkpoint.
        if syncs % 1024 == 0 {
            file.set_len(0)?;
            file = std::fs::OpenOptions::new().write(true).open(&path)?;
        }
    }
    drop(file);
    std::fs::remove_file(&path)?;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(DiskFloor {
        syncs,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: histogram.max() as f64 / 1000.0,
    })
}
