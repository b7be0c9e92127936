//! Every `//#` quote of RFC 9000, 9001 and 9002 in the workspace's source is the RFC's own text.
//!
//! The duvet convention (`//= <rfc url>#section-N`, optional `//= type=test`, then `//#` lines)
//! marks requirements in the code. This test reads the RFC texts vendored in `specs/`, keeps the
//! body of each numbered section (page headers, footers and form feeds removed), and checks that
//! each quote appears word for word in the section its `//=` line cites, whitespace normalised.
//! It also checks the requirement counts per RFC that the README reports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The RFCs whose quotes are checked: number and title as the README's table names them.
const RFCS: [(&str, &str); 3] =
    [("9000", "RFC 9000 (transport)"), ("9001", "RFC 9001 (TLS)"), ("9002", "RFC 9002 (recovery)")];

/// The source folders scanned for annotations, relative to the workspace root.
const SOURCE_DIRS: [&str; 4] = ["datapath", "engine", "tools", "benches"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Collapses runs of whitespace to one space and joins words split after a hyphen at a line end,
/// so a quote re-wrapped in a comment compares equal to the RFC's text.
fn normalise(s: &str) -> String {
    let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.replace("- ", "-")
}

/// The section number a heading line starts, e.g. `"19.15"` for `"19.15.  NEW_CONNECTION_ID
/// Frames"` or `"A.1"` for `"A.1.  Tracking Sent Packets"`; `None` for any other line.
fn heading(line: &str) -> Option<String> {
    let line = line.strip_prefix("Appendix ").unwrap_or(line);
    let (token, rest) = line.split_once(' ')?;
    let number = token.strip_suffix('.')?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    if rest.is_empty() || rest.starts_with(' ') {
        return None;
    }
    let mut parts = number.split('.');
    let first = parts.next()?;
    let first_ok = (!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()))
        || (first.len() == 1 && first.bytes().all(|b| b.is_ascii_uppercase()));
    let rest_ok = parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (first_ok && rest_ok).then(|| number.to_string())
}

/// An RFC's sections: number => normalised body text.
fn sections(rfc: &str) -> BTreeMap<String, String> {
    let path = workspace_root().join("specs").join(format!("rfc{rfc}.txt"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut body = String::new();
    for raw in text.lines() {
        let line = raw.replace('\u{c}', "");
        let page_footer = line.trim_end().ends_with(']') && line.contains("[Page ");
        let page_header = line.starts_with(&format!("RFC {rfc} "));
        if page_footer || page_header {
            continue;
        }
        if let Some(number) = heading(&line) {
            if let Some(done) = current.take() {
                out.insert(done, normalise(&body));
            }
            current = Some(number);
            body.clear();
        } else if current.is_some() {
            body.push_str(&line);
            body.push('\n');
        }
    }
    if let Some(done) = current {
        out.insert(done, normalise(&body));
    }
    out
}

/// One `//#` block with the `//=` lines before it.
struct Quote {
    file: PathBuf,
    line: usize,
    rfc: String,
    section: String,
    test: bool,
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The RFC number and section of a citation URL of one of [`RFCS`], e.g.
/// `https://www.rfc-editor.org/rfc/rfc9000#section-19.15`.
fn citation(url: &str) -> Option<(String, String)> {
    let (doc, anchor) = url.split_once('#').unwrap_or((url, ""));
    let rfc = doc.rsplit_once("rfc")?.1;
    RFCS.iter().find(|(n, _)| *n == rfc)?;
    let section =
        anchor.strip_prefix("section-").or_else(|| anchor.strip_prefix("appendix-")).unwrap_or("");
    Some((rfc.to_string(), section.to_string()))
}

/// Every quote of [`RFCS`] in the workspace, and the `//#` blocks that follow no citation.
fn quotes() -> (Vec<Quote>, Vec<String>) {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut out = Vec::new();
    let mut orphans = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut url: Option<String> = None;
        let mut test = false;
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i].trim();
            if let Some(meta) = l.strip_prefix("//=") {
                let meta = meta.trim();
                if meta.starts_with("http") {
                    url = Some(meta.to_string());
                    test = false;
                } else if meta == "type=test" {
                    test = true;
                }
                i += 1;
            } else if l.starts_with("//#") {
                let start = i;
                let mut quote = String::new();
                while i < lines.len() && lines[i].trim().starts_with("//#") {
                    quote.push_str(&lines[i].trim()[3..]);
                    quote.push('\n');
                    i += 1;
                }
                let rel = file.strip_prefix(&root).unwrap().to_path_buf();
                match &url {
                    None => orphans.push(format!("{}:{}", rel.display(), start + 1)),
                    Some(u) => {
                        if let Some((rfc, section)) = citation(u) {
                            out.push(Quote {
                                file: rel,
                                line: start + 1,
                                rfc,
                                section,
                                test,
                                text: normalise(&quote),
                            });
                        }
                    }
                }
            } else {
                if !l.starts_with("//") {
                    url = None;
                    test = false;
                }
                i += 1;
            }
        }
    }
    (out, orphans)
}

#[test]
fn every_quote_is_the_rfc_text_of_its_section() {
    let specs: BTreeMap<&str, BTreeMap<String, String>> =
        RFCS.iter().map(|(n, _)| (*n, sections(n))).collect();
    let (quotes, orphans) = quotes();
    assert!(quotes.len() > 100, "only {} quotes found: is the scan broken?", quotes.len());
    let mut bad = String::new();
    for q in &quotes {
        let problem = match specs[q.rfc.as_str()].get(&q.section) {
            None => format!("RFC {} has no section '{}'", q.rfc, q.section),
            Some(body) if !body.contains(&q.text) => {
                let elsewhere =
                    specs[q.rfc.as_str()].iter().find(|(_, b)| b.contains(&q.text)).map(|(s, _)| s);
                match elsewhere {
                    Some(s) => format!("quote is in section {s}, not {}", q.section),
                    None => format!("not the text of RFC {} (a paraphrase?)", q.rfc),
                }
            }
            Some(_) => continue,
        };
        let _ = writeln!(bad, "{}:{}: {problem}: \"{}\"", q.file.display(), q.line, q.text);
    }
    for o in &orphans {
        let _ = writeln!(bad, "{o}: `//#` quote without a `//=` citation before it");
    }
    assert!(bad.is_empty(), "quotes that are not the RFC text:\n{bad}");
}

/// The README table of requirements per RFC, as this test counts them.
fn requirement_table(quotes: &[Quote]) -> String {
    let mut table = String::from(
        "| RFC | requirements quoted | cited by the implementation | cited by tests |\n\
         |---|---|---|---|\n",
    );
    for (n, title) in RFCS {
        let mut all = BTreeSet::new();
        let mut implemented = BTreeSet::new();
        let mut tested = BTreeSet::new();
        for q in quotes.iter().filter(|q| q.rfc == n) {
            let key = (q.section.clone(), q.text.clone());
            all.insert(key.clone());
            if q.test {
                tested.insert(key);
            } else {
                implemented.insert(key);
            }
        }
        let _ = writeln!(
            table,
            "| {title} | {} | {} | {} |",
            all.len(),
            implemented.len(),
            tested.len()
        );
    }
    table
}

#[test]
fn readme_reports_the_requirement_counts() {
    let (quotes, _) = quotes();
    let table = requirement_table(&quotes);
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "the README's table of annotated requirements is stale; it should read:\n{table}"
    );
}

#[test]
fn normalise_and_headings() {
    assert_eq!(normalise(" a\n   b  c- \n d "), "a b c-d");
    assert_eq!(heading("19.15.  NEW_CONNECTION_ID Frames").as_deref(), Some("19.15"));
    assert_eq!(heading("A.1.  Tracking Sent Packets").as_deref(), Some("A.1"));
    assert_eq!(heading("Appendix B.  Congestion Control").as_deref(), Some("B"));
    assert_eq!(heading("   19.15.  NEW_CONNECTION_ID Frames"), None);
    assert_eq!(heading("RFC 9000     QUIC Transport    May 2021"), None);
    assert_eq!(
        citation("https://www.rfc-editor.org/rfc/rfc9002#appendix-A.5"),
        Some(("9002".into(), "A.5".into()))
    );
    assert_eq!(citation("https://www.rfc-editor.org/rfc/rfc9369#section-3"), None);
}
