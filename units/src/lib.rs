//! Parsers and printers for the value syntaxes users type into Peregrine's commands and
//! settings: sizes, durations, core lists, switches. One syntax per kind of value, shared by the
//! `peregrine` CLI (its flags and settings keys) and the benchmarks' own command lines.
//!
//! Every parser returns a short reason (no key, no newline); the caller adds the flag or key and
//! the allowed range around it.

#![forbid(unsafe_code)]

use std::time::Duration;

/// Parses a byte count: a plain integer or one with a binary suffix `K`, `M`, `G` (also `KiB`,
/// `MiB`, `GiB`, case-insensitive): `65536`, `64K`, `16M`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!("'{s}' is not a byte count (e.g. 65536, 64K, 16M, 1G)"));
    }
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return Err(format!("'{s}' has an unknown size suffix (use K, M or G)")),
    };
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is too large"))?;
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("'{s}' is too large"))
}

/// Prints a byte count with the largest binary suffix that divides it exactly.
pub fn format_size(n: u64) -> String {
    for (shift, suffix) in [(30, "G"), (20, "M"), (10, "K")] {
        if n != 0 && n % (1u64 << shift) == 0 {
            return format!("{}{suffix}", n >> shift);
        }
    }
    n.to_string()
}

/// Parses a duration with a unit: `250us`, `500ms`, `30s`, `2m`, `1h`. A plain number is an
/// error (the unit is not guessed), and so is a fraction (`1.5s`: write `1500ms`). Every
/// command and every settings key uses this one syntax.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!("'{s}' is not a duration (e.g. 500ms, 5s, 1m, 1h)"));
    }
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is too large"))?;
    let micros_per = match unit.trim() {
        "us" | "µs" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        "" => return Err(format!("'{s}' has no unit (use ms, s, m or h, e.g. 5s)")),
        _ => return Err(format!("'{s}' has an unknown unit (use us, ms, s, m or h, e.g. 5s)")),
    };
    let us = n.checked_mul(micros_per).ok_or_else(|| format!("'{s}' is too large"))?;
    Ok(Duration::from_micros(us))
}

/// [`parse_duration`], then a range check whose error names the range in the same syntax:
/// `'2h' is outside 1ms..=1h`.
pub fn parse_duration_in(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < min || d > max {
        return Err(format!(
            "'{s}' is outside {}..={}",
            format_duration(min),
            format_duration(max)
        ));
    }
    Ok(d)
}

/// Prints a duration in the largest whole unit: `1h`, `2m`, `30s`, `500ms`, `250us`.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    for (per, unit) in [(3_600_000_000, "h"), (60_000_000, "m"), (1_000_000, "s"), (1_000, "ms")] {
        if us != 0 && us % per == 0 {
            return format!("{}{unit}", us / per);
        }
    }
    if us == 0 {
        return "0ms".into();
    }
    format!("{us}us")
}

/// Parses a list of numbers and ranges, `0-3,6`, into a sorted list without duplicates; each
/// number must be at most `max`. The empty string is the empty list.
pub fn parse_list(s: &str, max: u32) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            if s.trim().is_empty() {
                continue;
            }
            return Err(format!("'{s}' has an empty item (write e.g. 0-3,6)"));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (parse_item(a, s)?, parse_item(b, s)?),
            None => {
                let v = parse_item(part, s)?;
                (v, v)
            }
        };
        if lo > hi {
            return Err(format!("'{part}' is a reversed range (write {hi}-{lo})"));
        }
        if hi > max {
            return Err(format!("{hi} is outside 0..={max}"));
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn parse_item(item: &str, whole: &str) -> Result<u32, String> {
    let item = item.trim();
    if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{whole}' is not a list of numbers and ranges (e.g. 0-3,6)"));
    }
    item.parse().map_err(|_| format!("'{item}' is too large"))
}

/// Prints a sorted list compactly, merging runs into ranges: `[0,1,2,3,6]` → `0-3,6`.
pub fn format_list(v: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if j > i { format!("{}-{}", v[i], v[j]) } else { v[i].to_string() });
        i = j + 1;
    }
    parts.join(",")
}

/// Parses `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
pub fn parse_switch(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("'{s}' is not on or off")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("16m"), Ok(16 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        for bad in ["", "-1", "K", "1T", "1.5M", "99999999999999999999", "17179869184G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        for n in [0, 1, 1000, 1024, 3 << 20, 5 << 30, (1 << 20) + 1] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
        assert_eq!(format_size(1 << 20), "1M");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "30", "-1s", "1.5s", "s", "3d", "30 sec", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        let (lo, hi) = (Duration::from_millis(1), Duration::from_secs(3600));
        assert_eq!(parse_duration_in("1h", lo, hi), Ok(hi));
        assert_eq!(parse_duration_in("2h", lo, hi), Err("'2h' is outside 1ms..=1h".into()));
        for us in [0u64, 250, 1_000, 1_500, 30_000_000, 3_600_000_000, 120_000_000] {
            let d = Duration::from_micros(us);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("0-3,6", 64), Ok(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_list("6,0-1,1", 64), Ok(vec![0, 1, 6]));
        assert_eq!(parse_list("", 64), Ok(vec![]));
        for bad in ["3-1", "a", "1,,2", "-1", "1-", "0-65", "1;2", "0x1"] {
            assert!(parse_list(bad, 64).is_err(), "{bad}");
        }
        assert_eq!(format_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(format_list(&[]), "");
    }

    #[test]
    fn switches() {
        assert_eq!(parse_switch("on"), Ok(true));
        assert_eq!(parse_switch("OFF"), Ok(false));
        assert!(parse_switch("maybe").is_err());
    }
}
