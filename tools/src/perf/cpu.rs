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

/// User and system CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Time in user mode.
    pub user: Duration,
    /// Time in the kernel on the process's behalf.
    pub system: Duration,
}

impl CpuTimes {
    /// User plus system.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// `self - o`, saturating.
    pub fn since(&self, o: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(o.user),
            system: self.system.saturating_sub(o.system),
        }
    }
}

/// Parses a `stat` line: the name and (utime, stime) in ticks.
fn parse_split(line: &str) -> Option<(String, u64, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_owned();
    // Fields after the name start at field 3 (state); utime is 14, stime 15.
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime, stime))
}

/// Parses a `stat` line: the name and utime + stime in ticks.
fn parse_stat(line: &str) -> Option<(String, u64)> {
    parse_split(line).map(|(n, u, s)| (n, u + s))
}

/// The process's user and system CPU time so far (zero when procfs is unavailable).
pub fn process_times() -> CpuTimes {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_split(&s))
        .map(|(_, u, s)| CpuTimes { user: ticks(u), system: ticks(s) })
        .unwrap_or_default()
}

/// User and system CPU time of the live threads whose name `pick` accepts.
pub fn threads_times(pick: impl Fn(&str) -> bool) -> CpuTimes {
    let mut t = CpuTimes::default();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok();
            if let Some((name, u, s)) = stat.as_deref().and_then(parse_split) {
                if pick(&name) {
                    t.user += ticks(u);
                    t.system += ticks(s);
                }
            }
        }
    }
    t
}

fn ticks(t: u64) -> Duration {
    Duration::from_millis(t * 1000 / TICKS_PER_SEC)
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
