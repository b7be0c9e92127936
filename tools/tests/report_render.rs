//! The `--report` pages as a person sees them: each is rendered by headless Chromium into a
//! screenshot whose size, amount of ink and series colours are checked. Chromium is installed
//! by `.ci/run`; where it is absent outside CI the test says so and skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

use support::{run_bounded, temp_dir, BIN};

/// The Chromium binary, if installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
    })
}

/// Renders `page` at 1000 x `height` CSS pixels; the decoded RGBA screenshot.
fn screenshot(chrome: &Path, page: &Path, height: u32) -> (u32, u32, Vec<u8>) {
    let png = page.with_extension("png");
    let mut cmd = Command::new(chrome);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        &format!("--window-size=1000,{height}"),
        &format!("--screenshot={}", png.display()),
    ])
    .arg(format!("file://{}", page.display()));
    let out = run_bounded(cmd, Duration::from_secs(90));
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    let decoder = png::Decoder::new(std::fs::File::open(&png).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let rgba: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => buf[..info.buffer_size()].to_vec(),
        png::ColorType::Rgb => {
            buf[..info.buffer_size()].chunks(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect()
        }
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, rgba)
}

/// Pixels close to `rgb`.
fn count_near(rgba: &[u8], rgb: (u8, u8, u8)) -> usize {
    rgba.chunks(4)
        .filter(|p| {
            let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).abs();
            d(p[0], rgb.0) + d(p[1], rgb.1) + d(p[2], rgb.2) < 40
        })
        .count()
}

#[test]
fn reports_render_in_headless_chromium() {
    let Some(chrome) = chromium() else {
        return peregrine_datapath::require::unavailable(
            "chromium is not installed (.ci/run installs it), so the reports cannot be rendered",
        );
    };
    let dir = temp_dir("render");
    for (name, args, panels) in [
        ("bulk.html", &["--duration", "1s", "--connections", "2"][..], 1),
        ("rps.html", &["--rps", "--duration", "1s"], 3),
        ("hs.html", &["--handshakes", "--duration", "1s"], 2),
    ] {
        let page = dir.join(name);
        let mut cmd = Command::new(BIN);
        cmd.args(["perf", "--json", "--report"]).arg(&page).args(args);
        let out = run_bounded(cmd, Duration::from_secs(60));
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let height = 120 + 340 * panels + 200;
        let (w, h, rgba) = screenshot(&chrome, &page, height);
        assert_eq!((w, h), (1000, height), "{name}: screenshot size");
        let total = (w * h) as usize;
        let ink = rgba.chunks(4).filter(|p| p[0] < 200 || p[1] < 200 || p[2] < 200).count();
        // Axes, grid, labels, lines and the summary: a few percent of the page, not blank
        // and not a solid block.
        assert!(ink * 100 > total && ink * 2 < total, "{name}: {ink} of {total} pixels inked");
        // Nothing runs off the page's right edge: the charts keep a margin and the text
        // summary wraps (its long note lines were cut off at the window's edge).
        let edge = (0..h as usize)
            .flat_map(|y| (w as usize - 6..w as usize).map(move |x| (y * w as usize + x) * 4))
            .filter(|&i| rgba[i] < 200 || rgba[i + 1] < 200 || rgba[i + 2] < 200)
            .count();
        assert_eq!(edge, 0, "{name}: ink in the rightmost 6 pixel columns (clipped content)");
        // The first series colour (Okabe-Ito blue) is drawn: the data line and its legend.
        let blue = count_near(&rgba, (0, 114, 178));
        assert!(blue > 300, "{name}: {blue} blue pixels");
        if name == "bulk.html" {
            // Two connections and their sum: three colours.
            assert!(count_near(&rgba, (213, 94, 0)) > 100, "{name}: connection 1's colour");
            assert!(count_near(&rgba, (0, 158, 115)) > 100, "{name}: the sum's colour");
        } else {
            // The latency marks are drawn in the second colour.
            assert!(count_near(&rgba, (213, 94, 0)) > 40, "{name}: the percentile marks");
        }
    }
}
