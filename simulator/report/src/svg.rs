//! Small SVG charts written by hand (no scripts, no external assets), for the HTML
//! report: a fault timeline with one lane per fault family and target, as Jepsen's plots
//! draw their nemesis, and line charts over the same x axis (same margins: they align
//! under it) with the fault windows shaded, SLO lines and numbered markers; grouped bar
//! charts.
//!
//! Map: [`Lane`], [`Span`] and [`timeline_chart`]; [`Line`], [`Band`], [`Chart`] and
//! [`line_chart`]; [`BarGroup`] and [`bar_chart`]; [`nice_ticks`]; [`PALETTE`].
//!
//! Not covered: interactivity, anything but the charts the reports need.

use std::fmt::Write;

/// Series colours, in order (colour-blind friendly, after Okabe–Ito).
pub const PALETTE: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
];
/// Most points drawn per line (longer lines are thinned evenly).
pub const POINTS_DRAWN_MAX: usize = 2_000;
/// Most lanes a timeline draws (the rest are counted in a note).
pub const LANES_MAX: usize = 40;
/// Rows numbered markers are spread over before they may overlap.
const MARKER_ROWS: usize = 6;

/// Wide enough for a timeline's lane names; every chart uses it, so x positions line up
/// from one chart to the next.
const MARGIN_LEFT: f64 = 160.0;
const MARGIN_RIGHT: f64 = 16.0;
const MARGIN_TOP: f64 = 44.0;
const MARGIN_BOTTOM: f64 = 40.0;

/// One line: its name and its points (x, y); `None` leaves a gap.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Legend text.
    pub name: String,
    /// (x, y) in data units, x ascending.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A shaded x range (a fault window).
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Start, x units.
    pub from: f64,
    /// End, x units.
    pub to: f64,
    /// What it is (the tooltip; the timeline above the charts labels each fault).
    pub label: String,
}

/// A line chart's frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// The y axis's label (units).
    pub y_label: String,
    /// The x axis's label.
    pub x_label: String,
    /// Fixed y range (`None`: from the data, starting at 0 when all values are ≥ 0).
    pub y_range: Option<(f64, f64)>,
    /// Fixed x range (`None`: from the data); charts meant to align share one.
    pub x_range: Option<(f64, f64)>,
    /// Horizontal reference lines (an SLO, a tolerance), dashed red: (y, label).
    pub hlines: Vec<(f64, String)>,
    /// Size in pixels.
    pub width: f64,
    /// Size in pixels.
    pub height: f64,
    /// Draw steps (hold each value until the next) instead of straight segments.
    pub steps: bool,
    /// A logarithmic y axis (values ≤ 0 are left out); for spans of several decades.
    pub log_y: bool,
    /// Events drawn as dashed vertical lines, numbered; (x, what) — e.g. a game day's
    /// steps. The number is the marker's index + 1; `what` is its tooltip.
    pub markers: Vec<(f64, String)>,
}

impl Chart {
    /// A chart 1000×260 with x in hours.
    pub fn new(title: &str, y_label: &str) -> Chart {
        Chart {
            title: title.into(),
            y_label: y_label.into(),
            x_label: "virtual time (h)".into(),
            y_range: None,
            x_range: None,
            hlines: Vec::new(),
            width: 1000.0,
            height: 260.0,
            steps: false,
            log_y: false,
            markers: Vec::new(),
        }
    }
}

/// Text escaped for XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// About `n` round tick values covering `lo..=hi`.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    assert!(n >= 2);
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater)
        || !lo.is_finite()
        || !hi.is_finite()
    {
        return vec![lo];
    }
    let raw = (hi - lo) / (n - 1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut out = Vec::new();
    let mut t = first;
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a < 0.01 {
        format!("{v:.0e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn thin(points: &[(f64, Option<f64>)]) -> Vec<(f64, Option<f64>)> {
    if points.len() <= POINTS_DRAWN_MAX {
        return points.to_vec();
    }
    let every = points.len().div_ceil(POINTS_DRAWN_MAX);
    points.iter().step_by(every).copied().collect()
}

fn header(w: &mut String, width: f64, height: f64, title: &str) {
    let _ = write!(
        w,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="11"><title>{t}</title><rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/><text x="{MARGIN_LEFT}" y="18" font-size="14" font-weight="bold">{t}</text>"##,
        t = esc(title)
    );
}

/// A legend entry's width in pixels.
fn legend_len(name: &str) -> f64 {
    7.0 * name.chars().count() as f64 + 24.0
}

/// Rows the legend needs between the margins (it wraps rather than run over the title
/// or off the chart).
fn legend_rows(names: &[String], width: f64) -> usize {
    let room = width - MARGIN_LEFT - MARGIN_RIGHT;
    let mut rows = 1;
    let mut used = 0.0;
    for n in names {
        let len = legend_len(n);
        if used > 0.0 && used + len > room {
            rows += 1;
            used = 0.0;
        }
        used += len;
    }
    rows
}

/// A legend row's height.
const LEGEND_ROW: f64 = 13.0;

/// The legend, under the title, left-aligned with the plot, wrapped into rows.
fn legend(w: &mut String, names: &[String], width: f64) {
    let room = width - MARGIN_LEFT - MARGIN_RIGHT;
    let (mut x, mut row) = (0.0, 0.0);
    for (i, name) in names.iter().enumerate() {
        let len = legend_len(name);
        if x > 0.0 && x + len > room {
            row += 1.0;
            x = 0.0;
        }
        let c = PALETTE[i % PALETTE.len()];
        let (lx, y) = (MARGIN_LEFT + x, 26.0 + row * LEGEND_ROW);
        let _ = write!(
            w,
            r#"<rect x="{lx:.1}" y="{y:.1}" width="12" height="4" fill="{c}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 16.0,
            y + 6.0,
            esc(name)
        );
        x += len;
    }
}

/// Each marker's row (0 at the bottom): the lowest row whose last label ends before it.
fn marker_rows(xs: &[f64]) -> Vec<usize> {
    const LABEL_W: f64 = 16.0;
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|a, b| xs[*a].total_cmp(&xs[*b]));
    let mut ends = [f64::NEG_INFINITY; MARKER_ROWS];
    let mut rows = vec![0; xs.len()];
    for i in order {
        let row = (0..MARKER_ROWS)
            .find(|r| ends[*r] <= xs[i])
            .unwrap_or_else(|| {
                (0..MARKER_ROWS)
                    .min_by(|a, b| ends[*a].total_cmp(&ends[*b]))
                    .unwrap_or(0)
            });
        ends[row] = xs[i] + LABEL_W;
        rows[i] = row;
    }
    rows
}

/// A line chart of `lines` over x, with `bands` shaded behind them.
pub fn line_chart(c: &Chart, lines: &[Line], bands: &[Band]) -> String {
    let mut w = String::new();
    header(&mut w, c.width, c.height, &c.title);
    let names: Vec<String> = lines.iter().map(|l| l.name.clone()).collect();
    let extra_rows = legend_rows(&names, c.width) - 1;
    let (x0, x1) = (MARGIN_LEFT, c.width - MARGIN_RIGHT);
    let (y0, y1) = (
        c.height - MARGIN_BOTTOM,
        MARGIN_TOP + extra_rows as f64 * LEGEND_ROW,
    );
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let xmin = xs.clone().fold(f64::INFINITY, f64::min);
    let xmax = xs.fold(f64::NEG_INFINITY, f64::max);
    let (xmin, xmax) = match c.x_range {
        Some((a, b)) if b > a => (a, b),
        _ if xmin.is_finite() && xmax > xmin => (xmin, xmax),
        _ => (0.0, 1.0),
    };
    // On a log axis every value is drawn as its log10; ticks are whole decades.
    let tf = |y: f64| -> Option<f64> {
        if c.log_y {
            (y > 0.0).then(|| y.log10())
        } else {
            Some(y)
        }
    };
    let lines: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            name: l.name.clone(),
            points: l.points.iter().map(|(x, y)| (*x, y.and_then(tf))).collect(),
        })
        .collect();
    let lines = &lines[..];
    // The reference lines count in the range: an SLO met by far still shows.
    let refs: Vec<f64> = c.hlines.iter().filter_map(|(y, _)| tf(*y)).collect();
    let ys = lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .chain(refs.iter().copied());
    let y_range = if c.log_y {
        let lo = ys.clone().fold(f64::INFINITY, f64::min);
        let hi = ys.clone().fold(f64::NEG_INFINITY, f64::max);
        lo.is_finite()
            .then(|| (lo.floor(), hi.ceil().max(lo.floor() + 1.0)))
    } else {
        c.y_range
    };
    let (ymin, ymax) = match y_range {
        Some(r) => r,
        None => {
            let lo = ys.clone().fold(f64::INFINITY, f64::min);
            let hi = ys.fold(f64::NEG_INFINITY, f64::max);
            if !lo.is_finite() {
                (0.0, 1.0)
            } else {
                let lo = if lo >= 0.0 { 0.0 } else { lo };
                let hi = if hi > lo { hi * 1.05 } else { lo + 1.0 };
                (lo, hi)
            }
        }
    };
    let sx = |x: f64| x0 + (x - xmin) / (xmax - xmin) * (x1 - x0);
    let sy = |y: f64| y0 - (y.clamp(ymin, ymax) - ymin) / (ymax - ymin) * (y0 - y1);
    // Fault windows.
    for b in bands {
        let (a, z) = (sx(b.from.max(xmin)), sx(b.to.min(xmax)));
        let width = (z - a).max(1.5);
        let _ = write!(
            w,
            r##"<rect class="fault" x="{a:.1}" y="{y1:.1}" width="{width:.1}" height="{:.1}" fill="#d55e00" fill-opacity="0.12"><title>{}</title></rect>"##,
            y0 - y1,
            esc(&b.label)
        );
    }
    // Axes and grid.
    let y_ticks: Vec<(f64, String)> = if c.log_y {
        let (lo, hi) = (ymin.floor() as i32, ymax.ceil() as i32);
        (lo..=hi)
            .map(|e| (f64::from(e), fmt_tick(10f64.powi(e))))
            .collect()
    } else {
        nice_ticks(ymin, ymax, 5)
            .into_iter()
            .map(|t| (t, fmt_tick(t)))
            .collect()
    };
    for (t, label) in y_ticks {
        let y = sy(t);
        let _ = write!(
            w,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            x0 - 4.0,
            y + 4.0,
        );
    }
    for t in nice_ticks(xmin, xmax, 12) {
        let x = sx(t);
        let _ = write!(
            w,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{:.1}" stroke="#888888"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y0 + 4.0,
            y0 + 16.0,
            fmt_tick(t)
        );
    }
    let _ = write!(
        w,
        r##"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333333"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333333"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        (x0 + x1) / 2.0,
        c.height - 6.0,
        esc(&c.x_label),
        (y0 + y1) / 2.0,
        esc(&c.y_label)
    );
    // Reference lines (SLOs), dashed, labelled at the right end.
    for (y, label) in &c.hlines {
        let Some(ty) = tf(*y) else { continue };
        if !(ymin..=ymax).contains(&ty) {
            continue;
        }
        let y = sy(ty);
        let _ = write!(
            w,
            r##"<g class="slo"><line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#b00000" stroke-width="1.2" stroke-dasharray="6,4"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#b00000" font-size="10">{}</text></g>"##,
            x1 - 2.0,
            y - 3.0,
            esc(label)
        );
    }
    // Markers, numbered; labels spread over rows so that close ones do not overlap.
    let shown: Vec<(usize, f64, &String)> = c
        .markers
        .iter()
        .enumerate()
        .filter(|(_, (x, _))| (xmin..=xmax).contains(x))
        .map(|(i, (x, what))| (i, sx(*x), what))
        .collect();
    let rows = marker_rows(&shown.iter().map(|m| m.1).collect::<Vec<_>>());
    for ((i, x, what), row) in shown.into_iter().zip(rows) {
        let _ = write!(
            w,
            r##"<g class="marker"><title>{n}. {}</title><line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="#555555" stroke-dasharray="3,3"/><text x="{:.1}" y="{:.1}" fill="#333333" font-size="9">{n}</text></g>"##,
            esc(what),
            x + 2.0,
            y0 - 4.0 - row as f64 * 10.0,
            n = i + 1,
        );
    }
    // Lines.
    for (i, l) in lines.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        let pts = thin(&l.points);
        for (x, y) in &pts {
            match y {
                Some(y) => {
                    let seg = segments.last_mut().expect("one segment");
                    if c.steps {
                        if let Some(&(_, py)) = seg.last() {
                            seg.push((sx(*x), py));
                        }
                    }
                    seg.push((sx(*x), sy(*y)));
                }
                None => segments.push(Vec::new()),
            }
        }
        for seg in segments.iter().filter(|s| !s.is_empty()) {
            let path: Vec<String> = seg.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            if seg.len() == 1 {
                let (x, y) = seg[0];
                let _ = write!(
                    w,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="{colour}"/>"#
                );
            } else {
                let _ = write!(
                    w,
                    r#"<polyline class="series" fill="none" stroke="{colour}" stroke-width="1.6" points="{}"/>"#,
                    path.join(" ")
                );
            }
        }
    }
    legend(&mut w, &names, c.width);
    w.push_str("</svg>");
    w
}

/// One bar of a timeline lane (a fault).
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Start, x units.
    pub from: f64,
    /// End, x units (= `from` for an instant: drawn as a tick).
    pub to: f64,
    /// Drawn inside the bar when it fits (the fault's kind).
    pub label: String,
    /// The tooltip (everything about it).
    pub tip: String,
    /// When it was detected, x units (a ▼ on the bar).
    pub detected: Option<f64>,
    /// When its targets were steady again, x units (a green tick).
    pub recovered: Option<f64>,
}

/// One lane of a timeline: a name (a fault family and target), a colour and its bars.
#[derive(Clone, Debug, PartialEq)]
pub struct Lane {
    /// Drawn left of the lane.
    pub name: String,
    /// Its bars' colour.
    pub colour: &'static str,
    /// Its bars, in time order.
    pub spans: Vec<Span>,
}

/// Height of one timeline lane, pixels.
const LANE_H: f64 = 18.0;

/// A fault timeline over `x_range`: one lane per entry of `lanes` (at most
/// [`LANES_MAX`]), each fault a bar labelled with its kind where it fits (its tooltip
/// says everything), its detection (▼) and recovery (green tick) marked; same margins and
/// x scale as a [`line_chart`] over the same range, so the charts below align with it.
pub fn timeline_chart(title: &str, x_label: &str, lanes: &[Lane], x_range: (f64, f64)) -> String {
    let width = 1000.0;
    let drawn = &lanes[..lanes.len().min(LANES_MAX)];
    let top = MARGIN_TOP;
    let y0 = top + LANE_H * drawn.len().max(1) as f64;
    let height = y0 + MARGIN_BOTTOM;
    let mut w = String::new();
    header(&mut w, width, height, title);
    let (x0, x1) = (MARGIN_LEFT, width - MARGIN_RIGHT);
    let (xmin, xmax) = if x_range.1 > x_range.0 {
        x_range
    } else {
        (0.0, 1.0)
    };
    let sx = |x: f64| x0 + (x.clamp(xmin, xmax) - xmin) / (xmax - xmin) * (x1 - x0);
    let more = lanes.len() - drawn.len();
    let _ = write!(
        w,
        r##"<text x="{x0}" y="34" fill="#555555">▼ detected    <tspan fill="#009e73" font-weight="bold">|</tspan> steady again{}</text>"##,
        if more > 0 {
            format!("    ({more} more lanes not drawn)")
        } else {
            String::new()
        }
    );
    for t in nice_ticks(xmin, xmax, 12) {
        let x = sx(t);
        let _ = write!(
            w,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{y0:.1}" stroke="#eeeeee"/><line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#888888"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y0 + 4.0,
            y0 + 16.0,
            fmt_tick(t)
        );
    }
    for (i, lane) in drawn.iter().enumerate() {
        let y = top + LANE_H * i as f64;
        if i % 2 == 1 {
            let _ = write!(
                w,
                r##"<rect x="{x0}" y="{y:.1}" width="{:.1}" height="{LANE_H}" fill="#000000" fill-opacity="0.04"/>"##,
                x1 - x0
            );
        }
        let _ = write!(
            w,
            r##"<text class="lane" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            y + 13.0,
            esc(&lane.name)
        );
        for s in &lane.spans {
            let (a, z) = (sx(s.from), sx(s.to));
            let bw = (z - a).max(2.0);
            let _ = write!(
                w,
                r##"<g class="span"><title>{}</title><rect x="{a:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{}" fill-opacity="0.8"/>"##,
                esc(&s.tip),
                y + 2.0,
                LANE_H - 4.0,
                lane.colour
            );
            // The kind inside the bar when it fits (about 6 px per character).
            if bw > 6.0 * s.label.chars().count() as f64 + 6.0 {
                let _ = write!(
                    w,
                    r##"<text x="{:.1}" y="{:.1}" fill="#ffffff" font-size="10">{}</text>"##,
                    a + 3.0,
                    y + 13.0,
                    esc(&s.label)
                );
            }
            if let Some(d) = s.detected {
                let _ = write!(
                    w,
                    r##"<path d="M{:.1},{:.1} l7,0 l-3.5,6 z" fill="#000000"/>"##,
                    sx(d) - 3.5,
                    y + 1.0
                );
            }
            if let Some(r) = s.recovered {
                let x = sx(r);
                let _ = write!(
                    w,
                    r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#009e73" stroke-width="2"/>"##,
                    y + 1.0,
                    y + LANE_H - 1.0
                );
            }
            w.push_str("</g>");
        }
    }
    let _ = write!(
        w,
        r##"<line x1="{x0}" y1="{y0:.1}" x2="{x1}" y2="{y0:.1}" stroke="#333333"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
        (x0 + x1) / 2.0,
        height - 6.0,
        esc(x_label)
    );
    w.push_str("</svg>");
    w
}

/// One group of bars (a category), one value per series.
#[derive(Clone, Debug, PartialEq)]
pub struct BarGroup {
    /// The category (x label).
    pub label: String,
    /// A value per series (`None`: no bar).
    pub values: Vec<Option<f64>>,
}

/// A grouped bar chart: `series` names the bars of each group.
pub fn bar_chart(title: &str, y_label: &str, series: &[&str], groups: &[BarGroup]) -> String {
    let (width, height) = (1000.0, 240.0);
    let mut w = String::new();
    header(&mut w, width, height, title);
    let (x0, x1) = (MARGIN_LEFT, width - MARGIN_RIGHT);
    let (y0, y1) = (height - MARGIN_BOTTOM, MARGIN_TOP);
    let hi = groups
        .iter()
        .flat_map(|g| g.values.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let ymax = if hi > 0.0 { hi * 1.1 } else { 1.0 };
    let sy = |y: f64| y0 - y / ymax * (y0 - y1);
    for t in nice_ticks(0.0, ymax, 5) {
        let y = sy(t);
        let _ = write!(
            w,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 4.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    let n = groups.len().max(1) as f64;
    let gw = (x1 - x0) / n;
    let bw = (gw * 0.8 / series.len().max(1) as f64).min(60.0);
    for (gi, g) in groups.iter().enumerate() {
        let gx = x0 + gi as f64 * gw + gw * 0.1;
        for (si, v) in g.values.iter().enumerate() {
            let Some(v) = v else { continue };
            let x = gx + si as f64 * bw;
            let y = sy(*v);
            let _ = write!(
                w,
                r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                bw - 2.0,
                (y0 - y).max(0.5),
                PALETTE[si % PALETTE.len()],
                esc(&g.label),
                esc(series.get(si).copied().unwrap_or("")),
                fmt_tick(*v)
            );
            // The value above the bar: small bars stay readable next to large ones.
            let _ = write!(
                w,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                x + (bw - 2.0) / 2.0,
                y - 3.0,
                fmt_tick(*v)
            );
        }
        let _ = write!(
            w,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + gw * 0.4,
            y0 + 16.0,
            esc(&g.label)
        );
    }
    let _ = write!(
        w,
        r##"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333333"/><text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        (y0 + y1) / 2.0,
        esc(y_label)
    );
    let names: Vec<String> = series.iter().map(|s| s.to_string()).collect();
    legend(&mut w, &names, width);
    w.push_str("</svg>");
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        // Goal: ticks are multiples of a 1/2/2.5/5 step inside the range.
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(
            nice_ticks(0.0, 24.0, 13),
            (0..=12).map(|i| i as f64 * 2.0).collect::<Vec<_>>()
        );
        assert_eq!(nice_ticks(3.0, 3.0, 5), vec![3.0]);
    }

    #[test]
    fn line_chart_draws_lines_gaps_and_bands() {
        // Goal: a gap splits a line; a band is shaded; text is escaped.
        let l = Line {
            name: "a<b".into(),
            points: vec![
                (0.0, Some(1.0)),
                (1.0, Some(2.0)),
                (2.0, None),
                (3.0, Some(1.0)),
                (4.0, Some(0.5)),
            ],
        };
        let band = Band {
            from: 1.0,
            to: 2.5,
            label: "link-down".into(),
        };
        let svg = line_chart(&Chart::new("t & t", "ratio"), &[l], &[band]);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("class=\"fault\"").count(), 1);
        assert!(svg.contains("a&lt;b") && svg.contains("t &amp; t"));
    }

    #[test]
    fn an_slo_line_far_from_the_data_still_shows_and_close_markers_spread_out() {
        // Goal: a freshness SLO met by far (p99 seconds against a 45-minute bound, log
        // axis) widens the range to show its line; markers a pixel apart get rows.
        let l = Line {
            name: "P0".into(),
            points: vec![(0.0, Some(2.0)), (4.0, Some(10.0))],
        };
        let mut c = Chart::new("t", "seconds");
        c.log_y = true;
        c.hlines = vec![(2700.0, "P0 SLO ≤ 45m".into())];
        let svg = line_chart(&c, std::slice::from_ref(&l), &[]);
        assert!(svg.contains("<g class=\"slo\">") && svg.contains("P0 SLO ≤ 45m"));
        assert!(
            svg.contains(">1000<"),
            "the log axis reaches the SLO's decade"
        );
        assert_eq!(marker_rows(&[10.0, 11.0, 12.0, 100.0]), vec![0, 1, 2, 0]);
    }

    #[test]
    fn markers_inside_the_x_range_are_drawn_numbered_with_their_tooltip() {
        // Goal: each marker in range is a dashed line numbered by its position, with
        // its text (escaped) as the tooltip; one outside the data's x range is left out.
        let l = Line {
            name: "a".into(),
            points: vec![(0.0, Some(1.0)), (4.0, Some(1.0))],
        };
        let mut c = Chart::new("t", "ratio");
        c.markers = vec![
            (1.0, "inject link-down <fibre>".into()),
            (9.0, "after the end".into()),
            (3.0, "heal".into()),
        ];
        let svg = line_chart(&c, &[l], &[]);
        assert_eq!(svg.matches("class=\"marker\"").count(), 2);
        assert!(svg.contains("<title>1. inject link-down &lt;fibre&gt;</title>"));
        assert!(svg.contains("<title>3. heal</title>"));
        assert!(!svg.contains("after the end"));
    }

    #[test]
    fn bar_chart_draws_one_bar_per_value() {
        // Goal: every present value is a bar; missing ones are not.
        let g = [
            BarGroup {
                label: "P0".into(),
                values: vec![Some(1.0), Some(3.0)],
            },
            BarGroup {
                label: "P1".into(),
                values: vec![None, Some(2.0)],
            },
        ];
        let svg = bar_chart("f", "s", &["p50", "p99"], &g);
        assert_eq!(svg.matches("class=\"bar\"").count(), 3);
    }
}
