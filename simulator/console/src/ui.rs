//! Drawing the console: `impl Widget for &App` (ratatui demo2's shape).
//!
//! The main screen stacks a header (scenario, seed, virtual time, speed, phase,
//! operator), the game-day line when a plan runs, topology beside KPIs with sparklines,
//! the fault timeline and invariant status beside the event log, and a footer with the
//! last action's result. Overlays: help (every key), the inject menu, a prompt, and the
//! game-day checklist. Everything fits 80×24; larger terminals get more log and towers.
//!
//! Link health colours compare ground truth (the link passes traffic) with the tower's
//! view (its probes call it healthy): green both up, red both down, magenta down but the
//! tower has not noticed, yellow up but the tower has not noticed yet.
//!
//! Not covered: state changes (see `app.rs`).

use crate::app::{App, Prompt, Screen, Selected, injections};
use crate::gameday::Answer;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};
use sovereign_logic::Time;
use sovereign_sim::world::{LinkView, Phase};

/// Sparkline glyphs, lowest first.
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Virtual time as `HH:MM:SS`, with a day prefix past the first day (`1d 02:03:04`).
pub fn clock(t: Time) -> String {
    let s = t.as_micros() / 1_000_000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{sec:02}")
    } else {
        format!("{h:02}:{m:02}:{sec:02}")
    }
}

/// Virtual time as `HH:MM` (`1d02:03` past the first day).
pub fn clock_short(t: Time) -> String {
    let m = t.as_micros() / 60_000_000;
    let (d, h, m) = (m / 1440, m / 60 % 24, m % 60);
    if d > 0 {
        format!("{d}d{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}")
    }
}

/// `×1000` or `unthrottled`.
pub fn speed_text(speed: Option<u64>) -> String {
    match speed {
        Some(x) => format!("×{x}"),
        None => "unthrottled".into(),
    }
}

/// A sparkline of `values` scaled to their maximum (missing points as spaces), the last
/// `width` points.
pub fn spark(values: &[Option<f64>], width: usize, lo: Option<f64>) -> String {
    let vals = &values[values.len().saturating_sub(width)..];
    let max = vals.iter().flatten().copied().fold(f64::MIN, f64::max);
    let min = lo.unwrap_or_else(|| vals.iter().flatten().copied().fold(f64::MAX, f64::min));
    vals.iter()
        .map(|v| match v {
            None => ' ',
            Some(x) => {
                let span = max - min;
                let i = if span <= f64::EPSILON {
                    if max > 0.0 { 7 } else { 0 }
                } else {
                    (((x - min) / span) * 7.0).round().clamp(0.0, 7.0) as usize
                };
                SPARKS[i]
            }
        })
        .collect()
}

fn bytes_text(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1}G", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}M", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0}K", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

fn us_text(us: Option<u64>) -> String {
    match us {
        None => "–".into(),
        Some(u) if u < 10_000_000 => format!("{:.1}s", u as f64 / 1e6),
        Some(u) if u < 120_000_000 => format!("{}s", u / 1_000_000),
        Some(u) if u < 7_200_000_000 => format!("{}m", u / 60_000_000),
        Some(u) => format!("{}h", u / 3_600_000_000),
    }
}

/// How a link looks: (label, colour).
fn link_health(l: &LinkView) -> (&'static str, Color) {
    match (l.passing, l.healthy) {
        (true, true) => ("up", Color::Green),
        (false, false) => ("DOWN", Color::Red),
        (false, true) => ("down?", Color::Magenta),
        (true, false) => ("up?", Color::Yellow),
    }
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Where the main screen's panels are, for drawing and for the mouse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Areas {
    /// The header line.
    pub header: Rect,
    /// The game-day line (height 0 without a game day).
    pub gameday: Rect,
    /// Topology.
    pub topology: Rect,
    /// KPIs.
    pub kpis: Rect,
    /// Faults (the end-of-run verdict covers it).
    pub faults: Rect,
    /// Invariants.
    pub invariants: Rect,
    /// The event log.
    pub log: Rect,
    /// The footer line.
    pub footer: Rect,
}

/// Which selection each column range of a topology line stands for: (from, to, what).
type Zones = Vec<(u16, u16, Selected)>;

impl App {
    /// The panels' areas on a screen of `area`.
    pub fn areas(&self, area: Rect) -> Areas {
        let snap = self.snapshot();
        let gd_h = u16::from(self.gameday.is_some());
        let towers_h = (1 + 2 * snap.towers.len()) as u16;
        let top_h = towers_h.max(7).saturating_add(2).min(area.height / 2);
        let [header, gameday, top, bottom, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(gd_h),
            Constraint::Length(top_h),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(area);
        let [topology, kpis] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
        let [left, log] =
            Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)])
                .areas(bottom);
        let inv_h = (snap.violations.len().min(4) as u16 + 2).max(3);
        let [faults, invariants] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(inv_h)]).areas(left);
        Areas {
            header,
            gameday,
            topology,
            kpis,
            faults,
            invariants,
            log,
            footer,
        }
    }

    /// What a click at (`col`, `row`) on a screen of `area` selects in the topology: the
    /// origin, a tower (its first line), or one of its links or its Wi-Fi (its second).
    pub fn topology_at(&self, area: Rect, col: u16, row: u16) -> Option<Selected> {
        let inner = Block::default()
            .borders(Borders::ALL)
            .inner(self.areas(area).topology);
        if !inner.contains(ratatui::layout::Position::new(col, row)) {
            return None;
        }
        let (_, zones) = self.topology_view(inner.height as usize);
        let x = col - inner.x;
        zones
            .get(usize::from(row - inner.y))?
            .iter()
            .find(|(a, z, _)| (*a..*z).contains(&x))
            .map(|(_, _, s)| *s)
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let a = self.areas(area);
        self.header(a.header, buf);
        if a.gameday.height > 0 {
            self.gameday_line(a.gameday, buf);
        }
        self.topology(a.topology, buf);
        self.kpis(a.kpis, buf);
        self.faults(a.faults, buf);
        self.invariants(a.invariants, buf);
        self.log(a.log, buf);
        self.footer(a.footer, buf);
        let (footer, left) = (a.footer, a.faults.union(a.invariants));
        match &self.screen {
            Screen::Help => help(area, buf),
            Screen::Inject => self.inject_menu(area, buf),
            Screen::Input(Prompt::Fault, text) => self.draw_inject_form(area, text, buf),
            Screen::Input(p, text) => {
                let line = Line::from(vec![
                    Span::styled(format!(" {}: ", p.label()), Style::new().bold()),
                    Span::raw(text.clone()),
                    Span::styled("█", Style::new().fg(Color::Gray)),
                ]);
                Clear.render(footer, buf);
                Paragraph::new(line)
                    .style(Style::new().bg(Color::DarkGray))
                    .render(footer, buf);
            }
            Screen::Confirm(danger) => {
                let line = Line::from(vec![
                    Span::styled(format!(" {} ", danger.question()), Style::new().bold()),
                    Span::styled("y: yes, any other key: no", Style::new().fg(Color::Yellow)),
                ]);
                Clear.render(footer, buf);
                Paragraph::new(line)
                    .style(Style::new().bg(Color::Red))
                    .render(footer, buf);
            }
            Screen::Main => {
                if self
                    .gameday
                    .as_ref()
                    .is_some_and(|g| g.pending_checklist().is_some())
                {
                    self.checklist(left, buf);
                } else if self.source().is_done() {
                    self.verdict(left, buf);
                }
            }
        }
    }
}

impl App {
    fn header(&self, area: Rect, buf: &mut Buffer) {
        let snap = self.snapshot();
        let src = self.source();
        let phase = match snap.phase {
            Phase::Safety => "safety",
            Phase::Liveness => "liveness",
            Phase::Done => "done",
        };
        let run = if src.is_done() {
            "■ over"
        } else if src.real_time() {
            "▶ real processes"
        } else if self.paused {
            "❚❚ paused"
        } else {
            "▶"
        };
        let text = format!(
            " sovereign · {} · seed {} · {} · {} {} · {} · op {}",
            src.scenario().name,
            src.seed(),
            clock(snap.now),
            if src.real_time() {
                "real time".to_string()
            } else {
                speed_text(self.speed())
            },
            run,
            phase,
            self.operator
        );
        Paragraph::new(text)
            .style(Style::new().bg(Color::Blue).fg(Color::White).bold())
            .render(area, buf);
    }

    fn gameday_line(&self, area: Rect, buf: &mut Buffer) {
        let Some(gd) = &self.gameday else { return };
        if gd.plan.free_play {
            let line = Line::from(vec![
                Span::styled(
                    " FREE PLAY ",
                    Style::new().bg(Color::DarkGray).fg(Color::White).bold(),
                ),
                Span::raw(" injections, heals and notes (m) go in the journal written on quit"),
            ]);
            Paragraph::new(line).render(area, buf);
            return;
        }
        let mut spans = vec![Span::styled(
            " GAME DAY ",
            Style::new().bg(Color::Magenta).fg(Color::White).bold(),
        )];
        if gd.aborted.is_some() {
            spans.push(Span::styled(
                " ABORTED ",
                Style::new().bg(Color::Red).fg(Color::White).bold(),
            ));
        }
        spans.push(Span::raw(format!(
            " {} · {}",
            gd.plan.title,
            gd.status(self.snapshot().now)
        )));
        Paragraph::new(Line::from(spans)).render(area, buf);
    }

    fn topology(&self, area: Rect, buf: &mut Buffer) {
        let block = Block::default()
            .borders(Borders::ALL)
            .title(format!(" Topology · {} ", self.selection_text()));
        let inner = block.inner(area);
        block.render(area, buf);
        let (lines, _) = self.topology_view(inner.height as usize);
        Paragraph::new(lines).render(inner, buf);
    }

    /// The topology's lines for a panel `h` lines high (scrolled to keep the selection in
    /// view), and each line's click zones.
    fn topology_view(&self, h: usize) -> (Vec<Line<'static>>, Vec<Zones>) {
        let snap = self.snapshot();
        let sel = Style::new().add_modifier(Modifier::REVERSED);
        let mut lines: Vec<Line> = Vec::new();
        let mut zones: Vec<Zones> = vec![vec![(0, u16::MAX, Selected::Origin)]];
        let origin_style = if self.selected == Selected::Origin {
            sel
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::styled("origin", origin_style.bold()),
            if snap.origin_up {
                Span::styled(" up", Style::new().fg(Color::Green))
            } else {
                Span::styled(" DOWN", Style::new().fg(Color::Red).bold())
            },
            Span::raw(format!(
                "  faults {} active",
                snap.faults.iter().filter(|f| f.active).count()
            )),
        ]));
        let mut first_line_of = Vec::new();
        for (i, t) in snap.towers.iter().enumerate() {
            first_line_of.push(lines.len());
            let tower = Selected::Tower {
                tower: i,
                link: None,
            };
            zones.push(vec![(0, u16::MAX, tower)]);
            let (tsel, lsel) = match self.selected {
                Selected::Tower { tower, link } if tower == i => (link.is_none(), link),
                _ => (false, None),
            };
            let state = if !t.running {
                Span::styled(" DOWN", Style::new().fg(Color::Red).bold())
            } else if t.paused {
                Span::styled(" paused", Style::new().fg(Color::Yellow))
            } else {
                Span::styled(
                    format!(" {}", t.power_mode.name()),
                    if t.power_mode == sovereign_logic::io::PowerMode::Normal {
                        Style::new().fg(Color::Green)
                    } else {
                        Style::new().fg(Color::Yellow)
                    },
                )
            };
            lines.push(Line::from(vec![
                Span::styled(
                    t.name.clone(),
                    if tsel {
                        sel.bold()
                    } else {
                        Style::new().bold()
                    },
                ),
                state,
                Span::raw(format!(
                    " SoC {:.0}% {:.0}W ob {}{}",
                    t.soc * 100.0,
                    t.solar_w,
                    t.outbox,
                    if t.steady { "" } else { " unsteady" }
                )),
            ]));
            let mut spans = vec![Span::raw("  ")];
            let mut link_zones: Zones = Vec::new();
            let mut x: u16 = 2;
            let mut zone = |x: &mut u16, text: &str, link: usize| {
                let w = u16::try_from(text.chars().count()).unwrap_or(u16::MAX);
                link_zones.push((
                    *x,
                    x.saturating_add(w),
                    Selected::Tower {
                        tower: i,
                        link: Some(link),
                    },
                ));
                *x = x.saturating_add(w).saturating_add(1);
            };
            for (j, l) in t.links.iter().enumerate() {
                let (label, colour) = link_health(l);
                let active = t.active_link == Some(l.kind);
                let mut st = Style::new().fg(colour);
                if lsel == Some(j) {
                    st = st.add_modifier(Modifier::REVERSED);
                }
                if active {
                    st = st.bold();
                }
                let kind = match l.kind {
                    sovereign_logic::protocol::LinkKind::Satellite => "sat".to_string(),
                    k => k.to_string(),
                };
                let text = format!("{}{kind} {label}", if active { "*" } else { "" });
                zone(&mut x, &text, j);
                spans.push(Span::styled(text, st));
                spans.push(Span::raw(" "));
            }
            let mut wst = Style::new().fg(if t.wifi_up { Color::Green } else { Color::Red });
            if lsel == Some(t.links.len()) {
                wst = wst.add_modifier(Modifier::REVERSED);
            }
            let wifi = format!("wifi {}", if t.wifi_up { "up" } else { "DOWN" });
            zone(&mut x, &wifi, t.links.len());
            spans.push(Span::styled(wifi, wst));
            lines.push(Line::from(spans));
            zones.push(link_zones);
        }
        // Keep the selected tower in view.
        let want = match self.selected {
            Selected::Tower { tower, .. } => first_line_of.get(tower).copied().unwrap_or(0) + 2,
            Selected::Origin => 1,
        };
        let skip = want.saturating_sub(h);
        (
            lines.into_iter().skip(skip).collect(),
            zones.into_iter().skip(skip).collect(),
        )
    }

    fn kpis(&self, area: Rect, buf: &mut Buffer) {
        let block = Block::default().borders(Borders::ALL).title(" KPIs ");
        let inner = block.inner(area);
        block.render(area, buf);
        let live = &self.live;
        let w = inner.width.saturating_sub(16) as usize;
        let buckets: Vec<_> = live.buckets().collect();
        let avail: Vec<Option<f64>> = buckets
            .iter()
            .map(|b| (b.reads_valid > 0).then(|| b.reads_good as f64 / b.reads_valid as f64))
            .collect();
        let backlog: Vec<Option<f64>> = buckets.iter().map(|b| Some(b.backlog as f64)).collect();
        let soc: Vec<Option<f64>> = buckets.iter().map(|b| b.soc_min).collect();
        let bytes: Vec<Option<f64>> = buckets.iter().map(|b| Some(b.bytes as f64)).collect();
        let fresh = |c: usize| {
            format!(
                "P{c} {}/{}",
                us_text(live.freshness_us(c, 50)),
                us_text(live.freshness_us(c, 99))
            )
        };
        let per_link: Vec<String> = sovereign_logic::protocol::LinkKind::ALL
            .iter()
            .map(|k| {
                let b = live.bytes_per_link().get(k).copied().unwrap_or(0);
                let name = match k {
                    sovereign_logic::protocol::LinkKind::Satellite => "sat".to_string(),
                    k => k.to_string(),
                };
                format!("{name} {}", bytes_text(b))
            })
            .collect();
        let cyan = Style::new().fg(Color::Cyan);
        let row = |label: &str, value: String, sp: String| {
            Line::from(vec![
                Span::styled(format!("{label:<8}"), Style::new().bold()),
                Span::raw(format!("{value:<8}")),
                Span::styled(sp, cyan),
            ])
        };
        let lines = vec![
            row(
                "avail",
                format!("{:.2}%", live.availability() * 100.0),
                spark(&avail, w, Some(0.0)),
            ),
            Line::from(format!("fresh   {}  {}", fresh(0), fresh(1))),
            Line::from(format!("p50/99  {}  {}", fresh(2), fresh(3))),
            row(
                "outbox",
                live.backlog().to_string(),
                spark(&backlog, w, Some(0.0)),
            ),
            row(
                "SoC min",
                live.soc_min()
                    .map_or("–".into(), |s| format!("{:.0}%", s * 100.0)),
                spark(&soc, w, Some(0.0)),
            ),
            row(
                "bytes",
                bytes_text(live.bytes_per_link().values().sum()),
                spark(&bytes, w, Some(0.0)),
            ),
            // Before the per-link detail: on a short panel that is what gives way.
            self.recovery_line(),
            Line::from(format!("        {}", per_link.join(" "))),
        ];
        Paragraph::new(lines).render(inner, buf);
    }

    /// The end of the run: the verdict on the invariants and the headline KPIs, over the
    /// faults panel (`area`).
    fn verdict(&self, area: Rect, buf: &mut Buffer) {
        let snap = self.snapshot();
        let k = self.summary();
        let real_time = self.source().real_time();
        let (head, colour) = if real_time {
            // Real processes: the oracles judge the whole run when the operator quits,
            // so nothing here may claim the invariants held (nor a score past its gate).
            (
                "invariants: judged when you quit (the report says); the score below is \
                 before that"
                    .to_string(),
                Color::Yellow,
            )
        } else if snap.violations.is_empty() {
            ("every invariant held".to_string(), Color::Green)
        } else {
            (
                format!("{} invariant violation(s)", snap.violations.len()),
                Color::Red,
            )
        };
        // The report's own lines (one truth), without their column padding.
        let pick = |name: &str| {
            k.lines()
                .into_iter()
                .find_map(|l| {
                    let rest = l.strip_prefix(name)?;
                    Some(format!("{name}: {}", rest.trim()))
                })
                .unwrap_or_default()
        };
        let mut lines = vec![Line::styled(
            format!(" {head}"),
            Style::new().bold().fg(colour),
        )];
        for name in [
            "availability",
            "mttd",
            "mttr",
            "error budget",
            "outbox backlog",
            "resilience score",
        ] {
            lines.push(Line::from(format!(" {}", pick(name))));
        }
        lines.push(Line::from(" q: write the journal / report and quit").fg(Color::Yellow));
        Clear.render(area, buf);
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" Run over ")
                    .border_style(Style::new().fg(colour)),
            )
            .render(area, buf);
    }

    /// MTTD, MTTR and the error budget so far, as the report computes them; the budget
    /// red once spent.
    fn recovery_line(&self) -> Line<'static> {
        let k = self.summary();
        let dur = |d: Option<std::time::Duration>| {
            us_text(d.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)))
        };
        let mut spans = vec![
            Span::styled("mttd/r  ", Style::new().bold()),
            Span::raw(format!("{} / {}", dur(k.mttd), dur(k.mttr))),
            Span::raw("  budget "),
        ];
        spans.push(match k.error_budget_remaining {
            None => Span::styled("n/a (no SLO)", Style::new().fg(Color::DarkGray)),
            Some(b) => Span::styled(
                format!(
                    "{:.0}% burn {}",
                    b * 100.0,
                    k.burn_rate.map_or("–".into(), |r| format!("{r:.2}"))
                ),
                Style::new().fg(if b < 0.0 { Color::Red } else { Color::Green }),
            ),
        });
        Line::from(spans)
    }

    fn faults(&self, area: Rect, buf: &mut Buffer) {
        let snap = self.snapshot();
        let block = Block::default().borders(Borders::ALL).title(" Faults ");
        let inner = block.inner(area);
        block.render(area, buf);
        let towers: Vec<String> = snap.towers.iter().map(|t| t.name.clone()).collect();
        let mut faults: Vec<_> = snap.faults.iter().collect();
        // Active first, then the most recent.
        faults.sort_by_key(|f| (!f.active, std::cmp::Reverse(f.spec.at)));
        let now = snap.now.as_micros();
        let lines: Vec<Line> = if faults.is_empty() {
            vec![Line::from("no faults yet: i to inject").fg(Color::DarkGray)]
        } else {
            faults
                .iter()
                .take(inner.height as usize)
                .map(|f| {
                    let start = f.spec.at.as_micros() as u64;
                    let (mark, st) = if f.active {
                        ("●", Style::new().fg(Color::Red))
                    } else if start > now {
                        ("·", Style::new().fg(Color::DarkGray))
                    } else {
                        ("○", Style::new())
                    };
                    let by = self
                        .injected_by
                        .get(&f.id)
                        .map(|o| format!(" @{o}"))
                        .unwrap_or_default();
                    let dur = if f.spec.duration.is_zero() {
                        String::new()
                    } else {
                        format!(
                            " {}",
                            sovereign_sim::scenario::format_duration(f.spec.duration)
                        )
                    };
                    let target = crate::live::fault_text(
                        &sovereign_sim::scenario::FaultSpec {
                            duration: std::time::Duration::ZERO,
                            ..f.spec.clone()
                        },
                        &towers,
                    );
                    let hhmm = clock_short(Time::from_micros(start));
                    Line::styled(
                        format!(
                            "{mark}{} {hhmm} {}{dur}{by}",
                            f.id,
                            target.replace(" on ", " ")
                        ),
                        st,
                    )
                })
                .collect()
        };
        Paragraph::new(lines).render(inner, buf);
    }

    fn invariants(&self, area: Rect, buf: &mut Buffer) {
        let snap = self.snapshot();
        let n = self.source().scenario().invariants.len();
        let block = Block::default().borders(Borders::ALL).title(" Invariants ");
        let inner = block.inner(area);
        block.render(area, buf);
        let lines: Vec<Line> = if self.source().real_time() {
            vec![Line::styled(
                format!("{n} invariants: judged at the end of a lab run"),
                Style::new().fg(Color::Gray),
            )]
        } else if snap.violations.is_empty() {
            vec![Line::styled(
                format!("✓ all {n} invariants holding"),
                Style::new().fg(Color::Green).bold(),
            )]
        } else {
            snap.violations
                .iter()
                .map(|v| {
                    Line::styled(
                        format!("✗ {} at {}: {}", v.oracle, clock(v.at), v.detail),
                        Style::new().fg(Color::Red).bold(),
                    )
                })
                .collect()
        };
        Paragraph::new(lines).render(inner, buf);
    }

    fn log(&self, area: Rect, buf: &mut Buffer) {
        let filter = match (self.filter, self.text_filter.is_empty()) {
            (None, true) => "all".to_string(),
            (Some(c), true) => c.name().to_string(),
            (None, false) => format!("/{}", self.text_filter),
            (Some(c), false) => format!("{} /{}", c.name(), self.text_filter),
        };
        let block = Block::default().borders(Borders::ALL);
        let h = block.inner(area).height as usize;
        self.log_height.set(h);
        let shown = self.shown_log_lines();
        // The window ends at the pinned line, but shows a full panel when it can (a pin
        // near the top, or on a line the bounded log has since dropped).
        let end = match self.log_pin {
            None => shown.len(),
            Some(pin) => shown
                .partition_point(|(n, _)| *n <= pin)
                .max(h.min(shown.len())),
        };
        let (title, title_style) = match self.log_pin {
            None => (format!(" Events [{filter}] · following "), Style::new()),
            Some(_) => (
                format!(
                    " Events [{filter}] · {} newer below · End follows ",
                    shown.len() - end
                ),
                Style::new().fg(Color::Yellow).bold(),
            ),
        };
        let block = block.title(Span::styled(title, title_style));
        let inner = block.inner(area);
        block.render(area, buf);
        let lines: Vec<Line> = shown[end.saturating_sub(h)..end]
            .iter()
            .map(|(_, l)| {
                use crate::live::Category as C;
                let colour = match l.category {
                    // A fault's end (and the heal) is good news: not the start's red.
                    C::Fault if l.text.contains(" ends on ") || l.text.contains("healed") => {
                        Color::Green
                    }
                    C::Fault => Color::Red,
                    C::Link => Color::Yellow,
                    C::Power => Color::LightYellow,
                    C::Sync => Color::Gray,
                    C::Process => Color::LightRed,
                    C::Operator => Color::Magenta,
                    C::Violation => Color::Red,
                };
                Line::from(vec![
                    Span::styled(clock(l.at), Style::new().fg(Color::DarkGray)),
                    Span::raw(" "),
                    Span::styled(l.text.clone(), Style::new().fg(colour)),
                ])
            })
            .collect();
        Paragraph::new(lines).render(inner, buf);
    }

    fn footer(&self, area: Rect, buf: &mut Buffer) {
        let keys = if self.source().real_time() {
            " i inject H heal m note ? help q quit"
        } else {
            " ␣ pause n step +/- speed i inject ? help q quit"
        };
        let room = (area.width as usize).saturating_sub(keys.chars().count() + 1);
        let status: String = self.status.chars().take(room).collect();
        let pad = room.saturating_sub(status.chars().count());
        Paragraph::new(Line::from(vec![
            Span::styled(format!(" {status}{}", " ".repeat(pad)), Style::new().bold()),
            Span::styled(keys, Style::new().fg(Color::Gray)),
        ]))
        .style(Style::new().bg(Color::Black))
        .render(area, buf);
    }

    fn inject_menu(&self, area: Rect, buf: &mut Buffer) {
        let r = centered(area, 44, injections().count() as u16 + 4);
        Clear.render(r, buf);
        let mut lines: Vec<Line> = injections()
            .map(|l| {
                let ok = self.fault_for(l.key).is_ok();
                Line::from(vec![
                    Span::styled(
                        format!(" {} ", l.key),
                        Style::new().bold().fg(Color::Yellow),
                    ),
                    Span::styled(
                        l.label.to_string(),
                        if ok {
                            Style::new()
                        } else {
                            Style::new().fg(Color::DarkGray)
                        },
                    ),
                ])
            })
            .collect();
        lines.push(Line::from(" any other key: close").fg(Color::DarkGray));
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" Inject on {} ", self.selection_text()))
                    .border_style(Style::new().fg(Color::Yellow)),
            )
            .render(r, buf);
    }

    /// The inject form: the fault as a plan step writes it, wrapped, with the cursor at
    /// its end; what each parameter takes; the last problem with it.
    fn draw_inject_form(&self, area: Rect, text: &str, buf: &mut Buffer) {
        let w = area.width.saturating_sub(4).clamp(20, 96);
        let inner = usize::from(w.saturating_sub(2)).max(1);
        let kind = text
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("kind = "))
            .map(|k| k.trim_matches('"'));
        let takes = kind
            .and_then(sovereign_sim::scenario::FaultKind::decl_named)
            .map(|d| {
                let params: Vec<String> = d
                    .params
                    .iter()
                    .map(|p| format!("{} ({})", p.keys().join(" or "), p.what))
                    .collect();
                if params.is_empty() {
                    format!("{}: no parameters", d.name)
                } else {
                    format!("{} takes {}", d.name, params.join(", "))
                }
            })
            .unwrap_or_default();
        let mut lines = vec![Line::from(vec![
            Span::raw(text.to_string()),
            Span::styled("█", Style::new().fg(Color::Gray)),
        ])];
        lines.push(Line::from(""));
        lines.push(Line::from(takes).fg(Color::DarkGray));
        lines.push(Line::from(self.status.clone()).fg(Color::Yellow));
        lines
            .push(Line::from(" Enter: inject · Backspace: edit · Esc: cancel").fg(Color::DarkGray));
        let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
        // One spare row: words wrap a little earlier than a character count says.
        let r = centered(area, w, rows as u16 + 3);
        Clear.render(r, buf);
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" {} ", Prompt::Fault.label()))
                    .border_style(Style::new().fg(Color::Yellow)),
            )
            .render(r, buf);
    }

    fn checklist(&self, area: Rect, buf: &mut Buffer) {
        let Some(gd) = &self.gameday else { return };
        let Some((title, items, done)) = gd.pending_checklist() else {
            return;
        };
        // Over the faults panel (`area`): the topology, the KPIs and the event log — what
        // the items ask the operator to look at — stay visible. Items wrap to its width.
        let inner = usize::from(area.width.saturating_sub(2)).max(1);
        let rows: usize = items
            .iter()
            .map(|i| (i.chars().count() + 5).div_ceil(inner))
            .sum::<usize>()
            + 3;
        let r = Rect {
            height: area.height.min(u16::try_from(rows + 2).unwrap_or(u16::MAX)),
            ..area
        };
        Clear.render(r, buf);
        let answers = gd.pending_answers();
        let mut lines: Vec<Line> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let (mark, st) = if i < done {
                    match answers.get(i).map(|c| c.answer) {
                        Some(Answer::No) => ("[✗]", Style::new().fg(Color::Red)),
                        Some(Answer::Skip) => ("[-]", Style::new().fg(Color::Gray)),
                        _ => ("[x]", Style::new().fg(Color::Green)),
                    }
                } else if i == done {
                    ("[ ]", Style::new().bold())
                } else {
                    ("[ ]", Style::new().fg(Color::Gray))
                };
                Line::styled(format!(" {mark} {item}"), st)
            })
            .collect();
        lines.push(
            Line::from(" y/Enter yes · n no (say what you saw) · s skip · A abort")
                .fg(Color::Yellow),
        );
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" Checklist: {title} "))
                    .border_style(Style::new().fg(Color::Magenta)),
            )
            .render(r, buf);
    }
}

/// Every key, for the help screen.
pub const HELP: [(&str, &str); 22] = [
    ("space / p", "pause / resume"),
    ("n / .", "step to the next event"),
    ("+ = / -", "faster / slower (×1 … ×100000)"),
    ("u", "unthrottled on / off"),
    ("g", "jump to a virtual time (6h, +30m)"),
    ("R", "restart with a new seed"),
    ("Tab / j / ↓", "select the next tower"),
    ("S-Tab / k / ↑", "select the previous tower"),
    ("← → / h l", "select a link of the tower"),
    ("i", "inject on the selection (then edit the form)"),
    ("H", "heal every active fault (asks first)"),
    ("m", "type a note (goes in the report)"),
    ("f", "cycle the event-log filter"),
    ("/", "filter the log by text"),
    (
        "PgUp / PgDn / Home / End",
        "log: back, forward, oldest, follow",
    ),
    ("Enter / y", "checklist: yes, as stated"),
    ("n", "checklist: no, and type what you saw"),
    ("s", "checklist: skip, with a reason"),
    ("A", "abort the game day (asks first)"),
    ("Esc", "close, clear filters, stop a jump"),
    ("?", "this help"),
    ("q / Ctrl-C", "quit (asks while the run goes on)"),
];

fn help(area: Rect, buf: &mut Buffer) {
    let r = centered(area, 62, HELP.len() as u16 + 2);
    Clear.render(r, buf);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<14}"), Style::new().bold().fg(Color::Yellow)),
                Span::raw(what.to_string()),
            ])
        })
        .collect();
    Paragraph::new(lines)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Keys (time holds; any key closes) ")
                .border_style(Style::new().fg(Color::Cyan)),
        )
        .render(r, buf);
}
