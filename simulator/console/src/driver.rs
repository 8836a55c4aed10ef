//! The terminal loop: one event enum ([`Msg`]) into one loop, drawing `&App` each frame.
//!
//! This is the console's only wall clock. The console is a driver: it paces virtual time
//! by wall time (speed × elapsed) and polls the keyboard with a timeout. The world never
//! sees the wall clock — it only receives `advance(to)`, `step`, `inject` and `heal`
//! calls — so the same seed and the same injections at the same virtual times give the
//! same trace hash. Hence the lint exemption below, for this module only.
//!
//! Not covered: what keys do (see `app.rs`), drawing (see `ui.rs`).
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the console paces virtual time by the wall clock; the world never reads it"
)]

use crate::app::App;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind,
};
use std::time::{Duration, Instant};

/// Longest wait for a key before the next frame.
pub const FRAME: Duration = Duration::from_millis(50);
/// Longest wall time one tick accounts for (a stalled terminal must not make a huge leap).
pub const TICK_MAX: Duration = Duration::from_millis(500);

/// What the loop reacts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// A key was pressed.
    Key(event::KeyEvent),
    /// The mouse: a click or the wheel.
    Mouse(event::MouseEvent),
    /// Time to move virtual time and redraw.
    Tick,
}

fn next_msg(timeout: Duration) -> std::io::Result<Msg> {
    if event::poll(timeout)? {
        return Ok(match event::read()? {
            Event::Key(k) if k.kind == KeyEventKind::Press => Msg::Key(k),
            Event::Mouse(m) => Msg::Mouse(m),
            _ => Msg::Tick,
        });
    }
    Ok(Msg::Tick)
}

/// Run the console in the terminal until the operator quits. The terminal is restored
/// whatever happens (ratatui's init installs a panic hook too).
pub fn run(app: &mut App) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = MouseCapture::on().and_then(|_mouse| run_loop(&mut terminal, app));
    ratatui::restore();
    result
}

/// The mouse captured (clicks select, the wheel scrolls the log) while it lives: given
/// back on drop, so also when a panic unwinds through the loop (ratatui's panic hook
/// restores the screen, not the mouse).
struct MouseCapture;

impl MouseCapture {
    fn on() -> std::io::Result<MouseCapture> {
        ratatui::crossterm::execute!(std::io::stdout(), EnableMouseCapture)?;
        Ok(MouseCapture)
    }
}

impl Drop for MouseCapture {
    fn drop(&mut self) {
        let _ = ratatui::crossterm::execute!(std::io::stdout(), DisableMouseCapture);
    }
}

fn run_loop(terminal: &mut DefaultTerminal, app: &mut App) -> std::io::Result<()> {
    let mut last = Instant::now();
    while !app.should_quit() {
        terminal.draw(|f| f.render_widget(&*app, f.area()))?;
        match next_msg(FRAME)? {
            Msg::Key(k) => app.handle_key(k),
            Msg::Mouse(m) => {
                let size = terminal.size()?;
                app.handle_mouse(m, ratatui::layout::Rect::new(0, 0, size.width, size.height));
            }
            Msg::Tick => {}
        }
        let now = Instant::now();
        app.tick((now - last).min(TICK_MAX));
        last = now;
    }
    Ok(())
}
