//! The README tells the truth about the binary: every `peregrine` command line in its shell
//! blocks parses (flags and values), and every key of its `perf --json` sample is in what
//! `perf --json` prints.

use std::time::Duration;

use serde_json::Value;

mod support;

use support::peregrine;

const README: &str = include_str!("../../README.md");
const LIMIT: Duration = Duration::from_secs(60);

/// `line` without a shell comment (` # ...`).
fn strip_comment(line: &str) -> &str {
    match line.find(" #") {
        Some(i) => &line[..i],
        None if line.trim_start().starts_with('#') => "",
        None => line,
    }
}

/// The arguments of each `peregrine ...` and `cargo run ... -p peregrine -- ...` command in
/// the README's ```sh blocks (continuation lines joined, redirections dropped).
fn readme_commands() -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    let mut lines = README.lines();
    let mut in_sh = false;
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let mut cmd = strip_comment(line).to_owned();
        while cmd.trim_end().ends_with('\\') {
            let next = lines.next().expect("a continuation line");
            cmd = format!("{} {}", cmd.trim_end().trim_end_matches('\\'), strip_comment(next));
        }
        let words: Vec<&str> = cmd
            .split_whitespace()
            .take_while(|w| !w.starts_with('>') && !w.starts_with('|') && *w != "&&")
            .collect();
        let args = match words.first() {
            Some(&"peregrine") => &words[1..],
            Some(&"cargo") if words.windows(2).any(|w| w == ["-p", "peregrine"]) => {
                match words.iter().position(|w| *w == "--") {
                    Some(i) => &words[i + 1..],
                    None => continue,
                }
            }
            _ => continue,
        };
        // `[--json]`: an optional flag, in usage notation.
        let unbracket = |w: &&str| match w.strip_prefix("[--").and_then(|w| w.strip_suffix(']')) {
            Some(flag) => format!("--{flag}"),
            None => w.to_string(),
        };
        cmds.push(args.iter().map(unbracket).collect());
    }
    cmds
}

/// With `--help` appended, clap parses every flag and value before it and then prints the
/// help; a flag it does not know or a value it refuses fails instead.
#[test]
fn every_readme_command_line_parses() {
    let cmds = readme_commands();
    assert!(cmds.len() >= 15, "the README's commands: {cmds:?}");
    for sub in ["server", "client", "perf", "config", "stress", "datapath-bench"] {
        assert!(cmds.iter().any(|c| c[0] == sub), "no {sub} example: {cmds:?}");
    }
    for args in &cmds {
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.push("--help");
        let out = peregrine(&a, LIMIT);
        assert!(
            out.status.success(),
            "README: `peregrine {}` does not parse: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every key path of `sample` (a README excerpt, `"..."` standing for elided items) is in
/// `real`; arrays are matched element by element against the real array's first element.
fn assert_keys_exist(sample: &Value, real: &Value, path: &str) {
    match (sample, real) {
        (Value::Object(s), Value::Object(r)) => {
            for (k, v) in s {
                let rv = r.get(k).unwrap_or_else(|| panic!("README key {path}.{k} not printed"));
                assert_keys_exist(v, rv, &format!("{path}.{k}"));
            }
        }
        (Value::Array(s), Value::Array(r)) => {
            for v in s.iter().filter(|v| v.as_str() != Some("...")) {
                let first = r.first().unwrap_or_else(|| panic!("{path}: empty in the output"));
                assert_keys_exist(v, first, &format!("{path}[]"));
            }
        }
        (Value::Object(_), other) => panic!("{path}: an object in the README, {other} printed"),
        _ => {}
    }
}

#[test]
fn readme_json_sample_matches_the_output() {
    let start = README.find("```json\n").expect("the JSON sample") + "```json\n".len();
    let len = README[start..].find("```").unwrap();
    let sample: Value = serde_json::from_str(&README[start..start + len]).expect("valid JSON");
    let out = peregrine(&["perf", "--duration", "2s", "-i", "1s", "--json"], LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let real: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_keys_exist(&sample, &real, "");
}
