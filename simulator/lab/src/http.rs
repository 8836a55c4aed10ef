//! A small blocking HTTP/1.1 client over std's TCP for the lab's own calls (one request
//! per connection, `Connection: close`), and a reader of the servers' server-sent event
//! stream (`GET /admin/events`).
//!
//! Why not the servers' hyper client: the lab runs one thread per device and per event
//! stream and wants plain blocking calls with a deadline each; a body is capped at
//! [`BODY_BYTES_MAX`].
//!
//! Not covered: TLS (the lab runs its servers on loopback, plain HTTP), keep-alive.

use sovereign_wire::event::EventRecordDto;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Largest body the lab reads (the lab's items are at most a few MiB).
pub const BODY_BYTES_MAX: usize = 80 << 20;

/// An answer.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers, as sent.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Resp {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> std::io::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).map_err(|e| {
            std::io::Error::other(format!("not JSON ({e}): {}", truncate(&self.text())))
        })
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One exchange: `method path` on `addr` with `headers` and `body`, within `timeout`
/// for the connection and for each read. `Err` when nothing (or nothing whole) answered.
pub fn request(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Resp> {
    let sock = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("address {addr}: {e}")))?;
    let mut s = TcpStream::connect_timeout(&sock, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    (&mut s)
        .take(BODY_BYTES_MAX as u64 + 64 * 1024)
        .read_to_end(&mut raw)?;
    let split = find(&raw, b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        let mut out = Vec::new();
        let mut b = rest;
        if !dechunk(&mut b, &mut out)? {
            return Err(std::io::Error::other("chunked body cut short"));
        }
        out
    } else {
        if let Some(len) = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
        {
            if rest.len() < len {
                return Err(std::io::Error::other(format!(
                    "body cut short: {} of {len} bytes",
                    rest.len()
                )));
            }
        }
        rest.to_vec()
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// Move every whole chunk at the front of `b` into `out`; `Ok(true)` once the last
/// (empty) chunk was read. What is left in `b` is an incomplete chunk.
fn dechunk(b: &mut &[u8], out: &mut Vec<u8>) -> std::io::Result<bool> {
    loop {
        let Some(pos) = find(b, b"\r\n") else {
            return Ok(false);
        };
        let line = String::from_utf8_lossy(&b[..pos]).into_owned();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            return Ok(true);
        }
        let start = pos + 2;
        if b.len() < start + size + 2 {
            return Ok(false);
        }
        if out.len() + size > BODY_BYTES_MAX {
            return Err(std::io::Error::other("body over the lab's cap"));
        }
        out.extend_from_slice(&b[start..start + size]);
        *b = &b[start + size + 2..];
    }
}

/// Read `GET /admin/events` on `addr` with the viewer `token`, calling `opened` once the
/// server has answered 200 (the stream has no history: what happened before is for
/// `opened` to read from the server's state), then `on` with each event record, until the
/// stream ends, fails, or `stop` is set (checked every 250 ms). `Ok(())` when it ended or
/// was stopped.
pub fn events(
    addr: &str,
    token: &str,
    stop: &AtomicBool,
    mut opened: impl FnMut(),
    mut on: impl FnMut(EventRecordDto),
) -> std::io::Result<()> {
    let sock = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("address {addr}: {e}")))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_millis(250)))?;
    let req = format!(
        "GET /admin/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    let mut raw: Vec<u8> = Vec::new();
    let mut text: Vec<u8> = Vec::new();
    let mut head: Option<bool> = None; // Some(chunked) once the head was read
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
        let chunked = match head {
            Some(c) => c,
            None => {
                let Some(p) = find(&raw, b"\r\n\r\n") else {
                    continue;
                };
                let h = String::from_utf8_lossy(&raw[..p]).to_ascii_lowercase();
                if !h.starts_with("http/1.1 200") {
                    return Err(std::io::Error::other(format!(
                        "GET /admin/events answered {}",
                        h.lines().next().unwrap_or("")
                    )));
                }
                let c = h.contains("transfer-encoding: chunked");
                raw.drain(..p + 4);
                head = Some(c);
                opened();
                c
            }
        };
        if chunked {
            let mut b: &[u8] = &raw;
            let ended = dechunk(&mut b, &mut text)?;
            let used = raw.len() - b.len();
            raw.drain(..used);
            if ended {
                return Ok(());
            }
        } else {
            text.append(&mut raw);
        }
        while let Some(p) = find(&text, b"\n\n") {
            let msg: Vec<u8> = text.drain(..p + 2).collect();
            let msg = String::from_utf8_lossy(&msg);
            let mut kind = "message";
            let mut data = String::new();
            for line in msg.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if kind == "event" {
                match serde_json::from_str::<EventRecordDto>(&data) {
                    Ok(r) => on(r),
                    Err(e) => crate::shout(&format!(
                        "lab: WARNING: an event record from {addr} did not decode ({e}): {data}"
                    )),
                }
            } else if kind == "lagged" {
                crate::shout(&format!(
                    "lab: WARNING: the event stream of {addr} lagged (events skipped): {data}"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunk_keeps_an_incomplete_chunk_for_later() {
        // Goal: a chunk cut across two reads is neither lost nor decoded early.
        let mut out = Vec::new();
        let whole = b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
        let mut b: &[u8] = &whole[..12];
        assert!(!dechunk(&mut b, &mut out).unwrap());
        assert_eq!(out, b"abc");
        assert_eq!(b, b"4\r\nd");
        let mut b: &[u8] = &whole[8..];
        assert!(dechunk(&mut b, &mut out).unwrap());
        assert_eq!(out, b"abcdefg");
    }
}
