//! The hit-ratio chart: one bar a minute on a 0–100% scale, as inline SVG
//! that reads without a script or a legend elsewhere. Both axes are
//! labelled, and each bar's `<title>` (the browser's tooltip) gives its
//! minute's figures, since a bar's height alone hides how many lookups it
//! stands for.

use super::{Minute, percent};

/// Room left of the plot for the y-axis labels.
const LEFT: usize = 40;
/// Room above the plot, so the 100% label is not cut off.
const TOP: usize = 8;
/// One pixel a percent.
const PLOT_H: usize = 100;
/// Room below the plot for the x-axis labels.
const BOTTOM: usize = 24;
/// A minute's width; its bar leaves a pixel to the next.
const SLOT: usize = 8;
/// The smallest bar, so a minute whose lookups all missed still shows (and
/// can be hovered).
const MIN_BAR: f64 = 2.0;

/// The chart of `minutes` (oldest first) as inline SVG, with the note that reads it.
pub fn chart(minutes: &[Minute]) -> String {
    let plot_w = minutes.len().max(1) * SLOT;
    // Room right of the plot, so the "now" label is not cut off.
    let (w, h) = (LEFT + plot_w + 8, TOP + PLOT_H + BOTTOM);
    let bars: String = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| bar(LEFT + i * SLOT, m))
        .collect();
    format!(
        "<svg id=\"ratio\" role=\"img\" aria-label=\"cache hit ratio per minute, last {} minutes\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">{}{bars}{}</svg>\n\
         <p class=\"note\">Each bar is a minute (UTC): the share of its cache lookups that hit. Grey: no lookups. Hover a bar for its figures.</p>\n",
        minutes.len(),
        x_axis(minutes.len(), plot_w),
        // Over the bars: the grey ones would hide the gridlines otherwise.
        y_axis(plot_w),
    )
}

/// Gridlines at 0, 50 and 100%, labelled at the left.
fn y_axis(plot_w: usize) -> String {
    [0, 50, 100]
        .iter()
        .map(|pct| {
            let y = TOP + PLOT_H - pct;
            format!(
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"/><text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{pct}%</text>",
                LEFT + plot_w,
                LEFT - 4,
                y + 4
            )
        })
        .collect()
}

/// Ticks at the start, middle and end of the hour, in minutes before now.
fn x_axis(count: usize, plot_w: usize) -> String {
    let base = TOP + PLOT_H;
    let marks = [
        (LEFT, "start", format!("{count} min ago")),
        (
            LEFT + plot_w / 2,
            "middle",
            format!("{} min ago", count / 2),
        ),
        (LEFT + plot_w, "end", "now".to_string()),
    ];
    marks
        .iter()
        .map(|(x, anchor, label)| {
            format!(
                "<line class=\"grid\" x1=\"{x}\" x2=\"{x}\" y1=\"{base}\" y2=\"{}\"/><text class=\"axis\" x=\"{x}\" y=\"{}\" text-anchor=\"{anchor}\">{label}</text>",
                base + 4,
                base + 16
            )
        })
        .collect()
}

/// A minute's bar, as tall as its hit ratio, with its figures as a
/// tooltip; a faint full-height one where nothing was looked up, so the
/// gap reads as "no traffic" rather than "all missed".
fn bar(x: usize, m: &Minute) -> String {
    let when = hh_mm(m.at);
    let width = SLOT - 1;
    if m.lookups == 0 {
        return format!(
            "<rect class=\"none\" x=\"{x}\" y=\"{TOP}\" width=\"{width}\" height=\"{PLOT_H}\"><title>{when} UTC: no lookups</title></rect>"
        );
    }
    let hits = m.hits.min(m.lookups);
    let h = (PLOT_H as f64 * hits as f64 / m.lookups as f64).max(MIN_BAR);
    format!(
        "<rect class=\"bar\" x=\"{x}\" y=\"{:.1}\" width=\"{width}\" height=\"{h:.1}\"><title>{when} UTC: {}, {}, {} hit</title></rect>",
        (TOP + PLOT_H) as f64 - h,
        counted(m.lookups, "lookup"),
        counted(hits, "hit"),
        percent(hits, m.lookups),
    )
}

/// `HH:MM` of a Unix time, in UTC.
fn hh_mm(unix: u64) -> String {
    let secs = unix % 86_400;
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

fn counted(n: u64, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        _ => format!("{n} {what}s"),
    }
}
