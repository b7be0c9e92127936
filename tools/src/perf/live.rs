//! What `perf` shows while it runs: on a terminal, a progress line on stderr rewritten every
//! second (what was sent and received so far and at what rate, both directions, so an upload
//! shows its progress too); with `-i/--interval`, one line per interval on stdout (per
//! connection when there are several, then the sum), as iperf3 prints them.

use std::io::Write;

use super::sample::{ConnDelta, Moved, Slot, Tick};

/// Human-readable byte count with a binary unit.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Human-readable bit rate with a decimal unit.
pub fn rate(bits_per_sec: f64) -> String {
    for (div, unit) in [(1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")] {
        if bits_per_sec >= div {
            return format!("{:.2} {unit}", bits_per_sec / div);
        }
    }
    format!("{bits_per_sec:.0} bit/s")
}

/// The running display.
pub struct Live {
    progress: bool,
    print_intervals: bool,
    counts_requests: bool,
    what: &'static str,
    slots: Vec<usize>,
    connections: usize,
    header_done: bool,
    total: Moved,
    since: Moved,
    since_secs: f64,
    progress_shown: bool,
}

impl Live {
    /// `progress`: rewrite a line on stderr (a terminal); `print_intervals`: interval lines on
    /// stdout; `what` names the requests (`requests`, `handshakes`) when they are counted.
    pub fn new(
        progress: bool,
        print_intervals: bool,
        what: Option<&'static str>,
        slots: &[Slot],
        connections: usize,
    ) -> Self {
        Live {
            progress,
            print_intervals,
            counts_requests: what.is_some(),
            what: what.unwrap_or(""),
            slots: slots.iter().map(|s| s.conn).collect(),
            connections,
            header_done: false,
            total: Moved::default(),
            since: Moved::default(),
            since_secs: 0.0,
            progress_shown: false,
        }
    }

    /// Takes a new tick and, when it closed one, the interval.
    pub fn tick(&mut self, t: &Tick, closed: Option<&Tick>) {
        let m = t.sum();
        self.total.add(m);
        self.since.add(m);
        self.since_secs += t.seconds();
        if let Some(iv) = closed {
            if self.print_intervals {
                self.clear_progress();
                self.interval(iv);
            }
        }
        if self.progress && self.since_secs >= 1.0 {
            let s = self.since_secs;
            let line = format!(
                "  {:>7.1} s  sent {:>11} ({:>12})  received {:>11} ({:>12}){}",
                t.end,
                bytes(self.total.sent),
                rate(self.since.sent as f64 * 8.0 / s),
                bytes(self.total.received),
                rate(self.since.received as f64 * 8.0 / s),
                if self.counts_requests {
                    format!(
                        "  {} {} ({:.0}/s)",
                        self.what,
                        self.total.requests,
                        self.since.requests as f64 / s
                    )
                } else {
                    String::new()
                }
            );
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{line}").and_then(|()| err.flush());
            self.progress_shown = true;
            self.since = Moved::default();
            self.since_secs = 0.0;
        }
    }

    /// The run's last interval (shorter than the others), when there is one to print.
    pub fn last(&mut self, iv: Option<&Tick>) {
        if let (true, Some(iv)) = (self.print_intervals, iv) {
            self.clear_progress();
            self.interval(iv);
        }
    }

    /// Clears the progress line, if one is shown.
    pub fn clear_progress(&mut self) {
        if self.progress_shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K").and_then(|()| err.flush());
            self.progress_shown = false;
        }
    }

    fn interval(&mut self, iv: &Tick) {
        if !self.header_done {
            let req = if self.counts_requests { format!("  {}", self.what) } else { String::new() };
            outln!("[ ID] interval (s)       sent          received      rate (both directions)   lost  PTOs{req}");
            self.header_done = true;
        }
        let secs = iv.seconds().max(1e-9);
        let line = |id: String, m: Moved, c: ConnDelta| {
            let req = if self.counts_requests {
                format!("  {} ({:.0}/s)", m.requests, m.requests as f64 / secs)
            } else {
                String::new()
            };
            format!(
                "[{id:>3}] {:>6.2}-{:<6.2}  {:>12}  {:>12}  {:>18}  {:>6}  {:>4}{req}",
                iv.start,
                iv.end,
                bytes(m.sent),
                bytes(m.received),
                rate(m.bytes() as f64 * 8.0 / secs),
                c.packets_lost,
                c.pto_count
            )
        };
        let mut sum_c = ConnDelta::default();
        for c in &iv.conns {
            sum_c.packets_lost += c.packets_lost;
            sum_c.pto_count += c.pto_count;
        }
        if self.connections > 1 {
            for conn in 0..self.connections {
                let mut m = Moved::default();
                for (s, x) in self.slots.iter().zip(&iv.streams) {
                    if *s == conn {
                        m.add(*x);
                    }
                }
                let c = iv.conns.get(conn).copied().unwrap_or_default();
                outln!("{}", line(conn.to_string(), m, c));
            }
        }
        outln!("{}", line("SUM".into(), iv.sum(), sum_c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.00 MiB");
        assert_eq!(rate(9.41e9), "9.41 Gbit/s");
        assert_eq!(rate(2.5e6), "2.50 Mbit/s");
        assert_eq!(rate(12.0), "12 bit/s");
    }
}
