//! The report's SVG, drawn with `plotters`: a title, one panel per time chart (step lines, one
//! per series, with a legend), the latency distribution (percentile on a log-of-nines axis,
//! the marked percentiles labelled), and the notes.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Chart, Distribution, Report, MARKED_PERCENTILES};

/// Width of the picture.
pub const WIDTH: u32 = 960;
/// Height of one panel.
const PANEL: u32 = 340;
/// Height of the title band.
const TITLE: u32 = 44;
/// Height of one note line.
const NOTE: u32 = 16;
/// The latency x axis spans percentiles 0 ..= 99.99 as log10(1 / (1 - p)), i.e. 0 ..= 4.
const NINES: f64 = 4.0;
/// Series colours (colour-blind safe, Okabe-Ito).
const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn err(e: impl std::fmt::Debug) -> String {
    format!("drawing the report: {e:?}")
}

/// Renders the report.
pub fn svg(report: &Report<'_>) -> Result<String, String> {
    let panels = report.charts.len() + usize::from(report.latency.is_some());
    let notes = report.notes.len() as u32;
    let height = TITLE + PANEL * panels.max(1) as u32 + NOTE * notes + 12;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (title, rest) = root.split_vertically(TITLE);
        title
            .draw(&Text::new(report.title.clone(), (16, 14), ("sans-serif", 20).into_font()))
            .map_err(err)?;
        let (body, foot) = rest.split_vertically(PANEL * panels.max(1) as u32);
        let areas = body.split_evenly((panels.max(1), 1));
        let mut areas = areas.iter();
        for chart in &report.charts {
            if let Some(a) = areas.next() {
                time_chart(a, chart)?;
            }
        }
        if let (Some(d), Some(a)) = (&report.latency, areas.next()) {
            latency(a, d)?;
        }
        for (i, n) in report.notes.iter().enumerate() {
            let style = ("sans-serif", 12).into_font().color(&RGBColor(60, 60, 60));
            foot.draw(&Text::new(format!("note: {n}"), (16, 4 + NOTE as i32 * i as i32), style))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// A time chart: x from 0 to the end of the last interval (not rounded up), y from 0 with
/// room above the highest value for the legend.
fn time_chart(area: &Area<'_>, chart: &Chart) -> Result<(), String> {
    let tmax = chart.lines.iter().flat_map(|l| l.steps.iter().map(|s| s.1)).fold(0.0, f64::max);
    let vmax = chart.lines.iter().flat_map(|l| l.steps.iter().map(|s| s.2)).fold(0.0, f64::max);
    let tmax = if tmax > 0.0 { tmax } else { 1.0 };
    let ymax = if vmax > 0.0 { vmax * 1.3 } else { 1.0 };
    let mut c = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 16))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(44)
        .y_label_area_size(78)
        .build_cartesian_2d(0f64..tmax, 0f64..ymax)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("time (s)")
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&|v| trim(*v))
        .y_label_formatter(&|v| trim(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    for (i, line) in chart.lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> =
            line.steps.iter().flat_map(|&(a, b, v)| [(a, v), (b, v)]).collect();
        c.draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(line.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3))
            });
    }
    if chart.lines.iter().all(|l| l.steps.is_empty()) {
        let style = TextStyle::from(("sans-serif", 14).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center));
        c.draw_series(std::iter::once(Text::new(
            "no intervals recorded",
            (tmax / 2.0, ymax / 2.0),
            style,
        )))
        .map_err(err)?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(150, 150, 150))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)
}

/// A number for an axis tick: no trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// The percentile a point of the nines axis stands for, as a label (`p99.9`).
fn nines_label(n: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-n));
    format!("p{}", trim((p * 1000.0).round() / 1000.0))
}

/// The latency distribution: latency against percentile, the marked ones labelled; labels
/// right of the middle are anchored on their right so that none leaves the picture.
fn latency(area: &Area<'_>, d: &Distribution<'_>) -> Result<(), String> {
    let h = match &d.histogram {
        Ok(h) if !h.is_empty() => *h,
        other => {
            let why = match other {
                Err(why) => why.clone(),
                _ => "no samples".into(),
            };
            let style = ("sans-serif", 14).into_font();
            return area
                .draw(&Text::new(format!("{}: not recorded ({why})", d.title), (16, 40), style))
                .map_err(err);
        }
    };
    let ymax = h.max() as f64 * 1.2;
    let mut c = ChartBuilder::on(area)
        .caption(format!("{} distribution ({} samples)", d.title, h.len()), ("sans-serif", 16))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(44)
        .y_label_area_size(78)
        .build_cartesian_2d(0f64..NINES, 0f64..ymax.max(1.0))
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_labels(5)
        .x_label_formatter(&|n| nines_label(*n))
        .y_label_formatter(&|v| trim(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    let curve: Vec<(f64, f64)> = (0..=400)
        .map(|k| {
            let n = NINES * k as f64 / 400.0;
            let p = 100.0 * (1.0 - 10f64.powf(-n));
            (n, h.value_at_percentile(p) as f64)
        })
        .collect();
    c.draw_series(LineSeries::new(curve, COLORS[0].stroke_width(2)))
        .map_err(err)?
        .label("latency at percentile")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], COLORS[0].stroke_width(3)));
    let marks: Vec<(f64, String, u64)> = MARKED_PERCENTILES
        .iter()
        .map(|&(p, name)| {
            (-(1.0 - p / 100.0f64).log10(), name.to_owned(), h.value_at_percentile(p))
        })
        .chain(std::iter::once((NINES, "max".to_owned(), h.max())))
        .collect();
    let red = COLORS[1];
    c.draw_series(marks.iter().map(|(n, _, v)| Circle::new((*n, *v as f64), 4, red.filled())))
        .map_err(err)?;
    c.draw_series(marks.iter().map(|(n, name, v)| {
        let right = *n > NINES / 2.0;
        let hpos = if right { HPos::Right } else { HPos::Left };
        let style =
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(hpos, VPos::Bottom));
        let dx = if right { -6 } else { 6 };
        EmptyElement::at((*n, *v as f64)) + Text::new(format!("{name} {v} µs"), (dx, -6), style)
    }))
    .map_err(err)?;
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(150, 150, 150))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(trim(2.0), "2");
        assert_eq!(trim(0.25), "0.25");
        assert_eq!(nines_label(0.0), "p0");
        assert_eq!(nines_label(2.0), "p99");
        assert_eq!(nines_label(3.0), "p99.9");
    }
}
