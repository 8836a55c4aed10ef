//! Real processes on loopback: `GET /admin/events`, the logic's events as server-sent
//! events (what the lab reads to feed real runs into the oracles and KPIs).
//!
//! - A viewer sees the tower's events as they happen, in the simulator's vocabulary: a
//!   published item's chunks verified and the item servable, numbered in order, each
//!   reading back as the logic's event.
//! - The origin streams its own events (an applied operation).
//! - No token is 401; a ninth reader at once is 503.
//!
//! Not covered: a reader falling behind (unit test in `sovereign_server::events`).

// Real processes on a real clock: waiting and sleeping are the point here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use sovereign_logic::io::Event;
use sovereign_wire::event::EventRecordDto;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

/// An open event stream: the status line, then its messages.
struct Stream {
    status: u16,
    lines: BufReader<TcpStream>,
}

fn open(admin: &str, token: Option<&str>) -> Stream {
    let mut s = TcpStream::connect(admin).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET /admin/events HTTP/1.1\r\nHost: {admin}\r\nAccept: text/event-stream\r\n{auth}\r\n"
    )
    .expect("request");
    let mut lines = BufReader::new(s);
    let mut status = String::new();
    lines.read_line(&mut status).expect("status line");
    let status = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    // Skip the headers.
    loop {
        let mut h = String::new();
        lines.read_line(&mut h).expect("header");
        if h == "\r\n" || h.is_empty() {
            break;
        }
    }
    Stream { status, lines }
}

impl Stream {
    /// Records until `until` returns true for one (or the deadline passes).
    fn until(&mut self, mut until: impl FnMut(&EventRecordDto) -> bool) -> Vec<EventRecordDto> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        let mut kind = String::new();
        while Instant::now() < deadline {
            let mut line = String::new();
            if self.lines.read_line(&mut line).expect("read") == 0 {
                break;
            }
            // Chunked transfer: size lines are hex digits alone; skip them.
            let line = line.trim_end();
            if let Some(k) = line.strip_prefix("event: ") {
                kind = k.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                assert_eq!(kind, "event", "an unexpected message: {kind} {data}");
                let r: EventRecordDto = serde_json::from_str(data).expect("an EventRecord");
                let done = until(&r);
                out.push(r);
                if done {
                    return out;
                }
            }
        }
        panic!("the awaited event never came; got {out:?}");
    }
}

#[test]
fn a_viewer_sees_the_logics_events_as_they_happen() {
    // Goal: the stream carries the tower's own events, in order, in the simulator's
    // vocabulary, and the origin's; readers are authenticated and bounded.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin(d, &[]);
    let tower = tower(d, 1, &origin.addr, &[]);

    assert_eq!(open(&tower.admin, None).status, 401);
    let mut s = open(&tower.admin, Some(VIEWER));
    assert_eq!(s.status, 200);
    let mut o = open(&origin.admin, Some(VIEWER));
    assert_eq!(o.status, 200);

    publish(&origin.admin, d, "news", "P0", &content(7, 200_000));
    let got = s.until(|r| {
        matches!(r.event.to_event(), Ok(Event::ContentServable { ref item, .. }) if item.0 == "news")
    });
    assert!(got.iter().all(|r| r.source == "tower-1"), "{got:?}");
    assert!(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "numbered in order: {:?}",
        got.iter().map(|r| r.seq).collect::<Vec<_>>()
    );
    let events: Vec<Event> = got
        .iter()
        .map(|r| r.event.to_event().expect("a logic event"))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ChunkVerified { .. })),
        "{events:?}"
    );

    // A contribution through the tower: the origin applies it and says so.
    let key = device_key(7, 1);
    assert_eq!(contribute(&tower.addr, 7, &key, "school", 100), 202);
    let applied = o.until(
        |r| matches!(r.event.to_event(), Ok(Event::OpApplied { key: ref k, .. }) if *k.0 == *key),
    );
    assert_eq!(applied.last().expect("one").source, "origin");

    // One reader of the tower is open; seven more fit, the ninth does not.
    let more: Vec<Stream> = (0..7).map(|_| open(&tower.admin, Some(VIEWER))).collect();
    assert!(more.iter().all(|m| m.status == 200));
    assert_eq!(open(&tower.admin, Some(VIEWER)).status, 503);
}

#[test]
fn a_stop_does_not_wait_on_an_open_event_stream() {
    // Goal: a server asked to stop (SIGTERM; the power manager's power-off takes the same
    // way out) exits although a reader keeps its event stream open — an event stream
    // never ends by itself. Before the shutdown grace period the lab found a tower that
    // had powered itself off still running a minute later, waiting on the lab's reader.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut origin = origin(dir.path(), &[]);
    let mut stream = open(&origin.admin, Some(VIEWER));
    assert_eq!(stream.status, 200);
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &origin.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    // The grace period (5 s) plus room for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = origin.child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the origin did not exit within 30 s of SIGTERM with an event stream open; its log:\n{}",
            origin.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}\n{}", origin.log_text());
    assert!(
        origin.log_text().contains("shutdown grace period"),
        "{}",
        origin.log_text()
    );
    // The reader sees its stream end (closed, not left hanging until its read timeout).
    let mut rest = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut stream.lines, &mut rest) {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the stream was left open: {e}"
        );
    }
}
