//! Processes as Linux shows them: pinning to a core with `taskset`, CPU time from `/proc`.

use std::process::{Command, Stdio};

use anyhow::bail;

/// Linux reports process times in USER_HZ, which is 100 on every architecture it runs on.
pub(crate) const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// User plus system time of every thread of `pid` so far, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name may hold spaces; the fields after its closing parenthesis do not.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            // utime and stime are fields 14 and 15, the 12th and 13th after the name.
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0)
}

/// Whether `program` can be run (here: whether `taskset` is installed).
pub(crate) fn which(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Pins a process, every thread of it, to one core.
pub(crate) fn pin_process(pid: u32, cpu: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("taskset could not pin the load generator to core {cpu}");
    }
    Ok(())
}
