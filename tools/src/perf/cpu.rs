//! CPU time from procfs: the process's (`/proc/self/stat`) and each thread's
//! (`/proc/self/task/*/stat`), user plus system. Assumes USER_HZ = 100 (Linux default;
//! `sysconf` needs `unsafe`).

use std::time::Duration;

const TICKS_PER_SEC: u64 = 100;

/// CPU time of one thread.
#[derive(Clone, Debug)]
pub struct ThreadCpu {
    /// Thread name (`comm`).
    pub name: String,
    /// User plus system time.
    pub cpu: Duration,
}

/// Parses a `stat` line: the name and utime + stime in ticks.
fn parse_stat(line: &str) -> Option<(String, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_owned();
    // Fields after the name start at field 3 (state); utime is 14, stime 15.
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

fn ticks(t: u64) -> Duration {
    Duration::from_millis(t * 1000 / TICKS_PER_SEC)
}

/// The process's CPU time so far (zero when procfs is unavailable).
pub fn process_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat(&s))
        .map(|(_, t)| ticks(t))
        .unwrap_or_default()
}

/// Live threads' CPU times, busiest first.
pub fn threads() -> Vec<ThreadCpu> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            if let Some((name, t)) =
                std::fs::read_to_string(e.path().join("stat")).ok().and_then(|s| parse_stat(&s))
            {
                out.push(ThreadCpu { name, cpu: ticks(t) });
            }
        }
    }
    out.sort_by_key(|t| std::cmp::Reverse(t.cpu));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_parses() {
        let l = "42 (peregrine-w0) R 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0";
        assert_eq!(parse_stat(l), Some(("peregrine-w0".into(), 280)));
        assert_eq!(ticks(280), Duration::from_millis(2800));
        assert!(parse_stat("garbage").is_none());
    }
}
