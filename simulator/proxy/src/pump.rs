//! The toxic pipeline: moves one connection's bytes in both directions through the
//! toxics of the proxy's current chain.
//!
//! Map: [`connection`] runs a proxied connection (two [`direction`]s, then closes or
//! resets both sockets); [`direction`] is a reader (timestamps each chunk as it arrives)
//! and a [`Writer`] joined by a bounded channel, so that latency is a pipeline delay
//! (a chunk leaves `latency` after it arrived) rather than a per-chunk stall.
//!
//! Live changes: every writer holds a `watch::Receiver` of its stream's chain and reads
//! the current chain before each chunk and whenever it changes, so adding or removing a
//! toxic reaches open connections; a chunk waiting in a toxic that is removed is released
//! at once. Each (connection, toxic) pair draws once whether the toxic applies
//! (`toxicity`); an updated toxic has a new id and draws again.
//!
//! Order: toxics apply in the chain's order (the order they were added): latency waits,
//! timeout and reset_peer drop, limit_data truncates, slicer cuts, loss retransmits; the
//! bandwidth toxics and the slicer's gaps pace the final writes.
//!
//! Not here: accepting connections and dialling the upstream (`state`).

use crate::toxic::{Kind, LOSS_RETRIES, Toxic};
use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng as _, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};

/// A toxic in a chain, with the id that tells one configuration from the next.
#[derive(Clone, Debug)]
pub struct Active {
    pub id: u64,
    pub toxic: Toxic,
}

/// One stream's toxics, in order.
pub type Chain = Arc<Vec<Active>>;

/// Bytes read per chunk at most.
const CHUNK: usize = 128 * 1024;
/// Chunks in flight between a direction's reader and writer (bounds memory under
/// latency: 16 × 128 KiB = 2 MiB per direction).
const IN_FLIGHT: usize = 16;
/// How far behind its schedule a bandwidth-limited writer may be and still catch up
/// (a burst of at most this much data at the rate, as Toxiproxy writes 100 ms of data at
/// a time); beyond it, the schedule restarts from now. It keeps the average rate when
/// the proxy's threads are descheduled for tens of milliseconds on a busy machine.
const PACE_SLACK: Duration = Duration::from_millis(100);
/// The longest retransmission wait of the loss toxic (Linux's `TCP_RTO_MAX`).
const RTO_MAX: Duration = Duration::from_secs(120);

/// How a direction (or a connection) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The source closed; the close was passed on (a half-close).
    Eof,
    /// A toxic (timeout, limit_data) or a failed write closes the whole connection.
    Close,
    /// A toxic (reset_peer, loss) resets the connection: RST to both peers.
    Reset,
}

/// The seeded random stream of one direction of one connection.
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// The stream for `(seed, connection, direction)`: the same triple draws the same
    /// numbers, whatever else runs.
    pub fn new(seed: u64, connection: u64, direction: u64) -> Rng {
        let mut x = seed;
        for v in [connection, direction] {
            x = splitmix(x ^ splitmix(v));
        }
        Rng(ChaCha8Rng::seed_from_u64(x))
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.0.next_u64() % n
    }

    /// Uniform in [-n, n].
    fn symmetric(&mut self, n: u64) -> i128 {
        if n == 0 {
            return 0;
        }
        let span = 2 * u128::from(n) + 1;
        (u128::from(self.0.next_u64()) % span) as i128 - i128::from(n)
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Per-connection state of one toxic.
struct State {
    applies: bool,
    /// When the toxic reached this connection (timeout counts from here).
    started: Instant,
    /// reset_peer: when the reset is due (set by the first data).
    reset_at: Option<Instant>,
    /// limit_data: bytes passed so far.
    passed: u64,
    /// bandwidth: when the link is free again.
    ready: Instant,
    /// corrupt: where the next window starts (stream offset; `passed` is the offset of
    /// the next byte), and the flips drawn and not yet reached: (offset, bit).
    window_start: u64,
    flips: Vec<(u64, u8)>,
}

/// The writing side of a direction: applies the chain to each chunk and writes it.
pub struct Writer<W> {
    dst: W,
    toxics: watch::Receiver<Chain>,
    /// False once the chain's sender is gone (the proxy was deleted): the last chain
    /// stays.
    watching: bool,
    states: BTreeMap<u64, State>,
    rng: Rng,
    bytes: Arc<AtomicU64>,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(dst: W, toxics: watch::Receiver<Chain>, rng: Rng, bytes: Arc<AtomicU64>) -> Self {
        Writer {
            dst,
            toxics,
            watching: true,
            states: BTreeMap::new(),
            rng,
            bytes,
        }
    }

    /// Brings the per-toxic states in line with the current chain; returns the chain.
    fn sync(&mut self) -> Chain {
        let chain = self.toxics.borrow_and_update().clone();
        let now = Instant::now();
        self.states
            .retain(|id, _| chain.iter().any(|a| a.id == *id));
        for a in chain.iter() {
            if !self.states.contains_key(&a.id) {
                let t = a.toxic.toxicity;
                let applies = t >= 1.0 || (t > 0.0 && self.rng.unit() < t);
                self.states.insert(
                    a.id,
                    State {
                        applies,
                        started: now,
                        reset_at: None,
                        passed: 0,
                        ready: now,
                        window_start: 0,
                        flips: Vec::new(),
                    },
                );
            }
        }
        chain
    }

    fn applying<'a>(&self, chain: &'a Chain) -> impl Iterator<Item = &'a Active> + use<'a, '_, W> {
        chain
            .iter()
            .filter(|a| self.states.get(&a.id).is_some_and(|s| s.applies))
    }

    /// The next timer that ends the connection (timeout, reset_peer), if any.
    fn deadline(&self, chain: &Chain) -> Option<(Instant, End)> {
        let mut best: Option<(Instant, End)> = None;
        for a in self.applying(chain) {
            let s = &self.states[&a.id];
            let due = match a.toxic.kind {
                Kind::Timeout { timeout } if timeout > 0 => {
                    Some((s.started + ms(timeout), End::Close))
                }
                Kind::ResetPeer { .. } => s.reset_at.map(|at| (at, End::Reset)),
                _ => None,
            };
            if let Some(d) = due {
                if best.is_none_or(|b| d.0 < b.0) {
                    best = Some(d);
                }
            }
        }
        best
    }

    /// Waits until `until`, or until toxic `id` leaves the chain (checked first: it may
    /// have left during an earlier wait of the same chunk). Returns true if it left.
    async fn wait(&mut self, until: Instant, id: u64) -> bool {
        let gone = |rx: &watch::Receiver<Chain>| !rx.borrow().iter().any(|a| a.id == id);
        if gone(&self.toxics) {
            return true;
        }
        loop {
            tokio::select! {
                () = sleep_until(until) => return false,
                r = self.toxics.changed(), if self.watching => {
                    if r.is_err() {
                        self.watching = false;
                    } else if gone(&self.toxics) {
                        return true;
                    }
                }
            }
        }
    }

    /// Runs until the channel closes (EOF) or a toxic ends the connection.
    pub async fn run(mut self, mut rx: mpsc::Receiver<(Instant, Bytes)>) -> End {
        loop {
            let chain = self.sync();
            let deadline = self.deadline(&chain);
            tokio::select! {
                () = sleep_until(deadline.map_or_else(Instant::now, |d| d.0)), if deadline.is_some() => {
                    return deadline.map_or(End::Close, |d| d.1);
                }
                r = self.toxics.changed(), if self.watching => {
                    if r.is_err() {
                        self.watching = false;
                    }
                }
                item = rx.recv() => match item {
                    Some((arrival, chunk)) => {
                        // The chain as it is now: a change that raced this chunk counts.
                        let chain = self.sync();
                        if let Some(end) = self.deliver(&chain, arrival, chunk).await {
                            return end;
                        }
                    }
                    None => {
                        let chain = self.sync();
                        return self.eof(&chain).await;
                    }
                }
            }
        }
    }

    async fn eof(&mut self, chain: &Chain) -> End {
        let delay = self
            .applying(chain)
            .filter_map(|a| match a.toxic.kind {
                Kind::SlowClose { delay } => Some(delay),
                _ => None,
            })
            .max();
        if let Some(d) = delay {
            sleep(ms(d)).await;
        }
        let _ = self.dst.shutdown().await;
        End::Eof
    }

    /// Passes one chunk through the chain; `Some` ends the connection.
    async fn deliver(&mut self, chain: &Chain, arrival: Instant, chunk: Bytes) -> Option<End> {
        let mut pieces = vec![chunk];
        let mut gap = None;
        let mut close_after = false;
        let active: Vec<Active> = self.applying(chain).cloned().collect();
        for a in &active {
            match a.toxic.kind {
                Kind::Noop | Kind::Bandwidth { .. } | Kind::SlowClose { .. } => {}
                Kind::Latency { latency, jitter } => {
                    let d = (i128::from(latency) + self.rng.symmetric(jitter)).max(0);
                    let _removed = self.wait(arrival + ms(d as u64), a.id).await;
                }
                Kind::Timeout { .. } => return None,
                Kind::ResetPeer { timeout } => {
                    let s = self.states.get_mut(&a.id)?;
                    s.reset_at
                        .get_or_insert_with(|| Instant::now() + ms(timeout));
                    return None;
                }
                Kind::LimitData { bytes } => {
                    let s = self.states.get_mut(&a.id)?;
                    let mut room = bytes.saturating_sub(s.passed);
                    let mut kept = Vec::new();
                    for p in pieces {
                        let n = (p.len() as u64).min(room);
                        room -= n;
                        if n > 0 {
                            kept.push(p.slice(..n as usize));
                        }
                    }
                    pieces = kept;
                    s.passed = bytes - room;
                    if s.passed >= bytes {
                        close_after = true;
                    }
                }
                Kind::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => {
                    pieces = slice(pieces, average_size, size_variation, &mut self.rng);
                    gap = Some(Duration::from_micros(delay));
                }
                Kind::Corrupt {
                    probability,
                    window,
                } => {
                    let s = self.states.get_mut(&a.id)?;
                    pieces = corrupt(pieces, s, probability, window, &mut self.rng);
                }
                Kind::Loss { loss_rate, rto } => {
                    let mut losses = 0;
                    while loss_rate > 0.0 && self.rng.unit() < loss_rate {
                        if losses == LOSS_RETRIES {
                            return Some(End::Reset);
                        }
                        let wait = ms(rto).saturating_mul(1 << losses).min(RTO_MAX);
                        if self.wait(Instant::now() + wait, a.id).await {
                            break; // the toxic was removed: the chunk goes through
                        }
                        losses += 1;
                    }
                }
            }
        }
        let rates: Vec<(u64, u64)> = active
            .iter()
            .filter_map(|a| match a.toxic.kind {
                Kind::Bandwidth { rate } if rate > 0 => Some((a.id, rate)),
                _ => None,
            })
            .collect();
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 0 {
                if let Some(g) = gap {
                    sleep(g).await;
                }
            }
            if self.write_paced(piece, &rates).await.is_err() {
                return Some(End::Close);
            }
        }
        close_after.then_some(End::Close)
    }

    /// Writes `piece`, paced by the bandwidth toxics `(id, KB/s)`: at most 100 ms of
    /// data per write, each write waiting until every limiter has room (Toxiproxy's
    /// scheme).
    async fn write_paced(&mut self, piece: Bytes, rates: &[(u64, u64)]) -> std::io::Result<()> {
        let step = rates
            .iter()
            .map(|r| r.1.saturating_mul(100))
            .min()
            .unwrap_or(u64::MAX)
            .max(1);
        let mut rest = piece;
        while !rest.is_empty() {
            let n = (rest.len() as u64).min(step) as usize;
            let part = rest.split_to(n);
            let mut until = Instant::now();
            for &(id, rate) in rates {
                if let Some(s) = self.states.get_mut(&id) {
                    let now = Instant::now();
                    // The schedule runs from the previous piece's due time, not from
                    // when this task woke: timer granularity (a sleep ends up to 1 ms late)
                    // would otherwise cost every piece a little and the rate 10% or more.
                    // A link idle for longer than PACE_SLACK starts afresh.
                    let from = s.ready.max(now.checked_sub(PACE_SLACK).unwrap_or(now));
                    s.ready =
                        from + Duration::from_nanos((n as u64).saturating_mul(1_000_000) / rate);
                    until = until.max(s.ready);
                }
            }
            if !rates.is_empty() {
                sleep_until(until).await;
            }
            self.dst.write_all(&part).await?;
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Flips one bit in each `window`-byte window of the stream with probability `p`: each
/// window's draw (whether, which byte, which bit) is made when its first byte passes;
/// pieces untouched pass as they are.
fn corrupt(pieces: Vec<Bytes>, s: &mut State, p: f64, window: u64, rng: &mut Rng) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let start = s.passed;
        let end = start + piece.len() as u64;
        while s.window_start < end {
            if p > 0.0 && rng.unit() < p {
                let at = s.window_start + rng.below(window);
                s.flips.push((at, rng.below(8) as u8));
            }
            s.window_start += window;
        }
        let mut garbled: Option<Vec<u8>> = None;
        s.flips.retain(|&(at, bit)| {
            if at >= end {
                return true;
            }
            if at >= start {
                let b = garbled.get_or_insert_with(|| piece.to_vec());
                b[(at - start) as usize] ^= 1 << bit;
            }
            false
        });
        s.passed = end;
        out.push(garbled.map_or(piece, Bytes::from));
    }
    out
}

/// Cuts pieces into slices of `avg ± var` bytes (at least 1).
fn slice(pieces: Vec<Bytes>, avg: u64, var: u64, rng: &mut Rng) -> Vec<Bytes> {
    let mut out = Vec::new();
    for mut p in pieces {
        while !p.is_empty() {
            let size = (i128::from(avg) + rng.symmetric(var)).max(1) as u64;
            let n = (p.len() as u64).min(size) as usize;
            out.push(p.split_to(n));
        }
    }
    out
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Reads `src` into timestamped chunks until EOF (or an error, treated as EOF).
async fn read_loop<R: AsyncRead + Unpin>(mut src: R, tx: mpsc::Sender<(Instant, Bytes)>) {
    let mut buf = BytesMut::with_capacity(CHUNK);
    loop {
        buf.reserve(CHUNK);
        match src.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let chunk = buf.split().freeze();
                if tx.send((Instant::now(), chunk)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One direction: `src` through the chain into `dst`.
pub async fn direction<R, W>(
    src: R,
    dst: W,
    toxics: watch::Receiver<Chain>,
    rng: Rng,
    bytes: Arc<AtomicU64>,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let reader = read_loop(src, tx);
    let writer = Writer::new(dst, toxics, rng, bytes).run(rx);
    tokio::pin!(reader, writer);
    let mut reading = true;
    loop {
        tokio::select! {
            () = &mut reader, if reading => reading = false,
            end = &mut writer => return end,
        }
    }
}

/// What a connection's two directions need from its proxy.
pub struct Links {
    pub upstream: watch::Receiver<Chain>,
    pub downstream: watch::Receiver<Chain>,
    pub seed: u64,
    pub index: u64,
    pub bytes_up: Arc<AtomicU64>,
    pub bytes_down: Arc<AtomicU64>,
}

/// Runs a proxied connection to its end; a reset sends RST to both peers.
pub async fn connection(mut client: TcpStream, mut upstream: TcpStream, links: Links) -> End {
    let end = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let up = direction(
            cr,
            uw,
            links.upstream,
            Rng::new(links.seed, links.index, 0),
            links.bytes_up,
        );
        let down = direction(
            ur,
            cw,
            links.downstream,
            Rng::new(links.seed, links.index, 1),
            links.bytes_down,
        );
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let end = tokio::select! {
                e = &mut up, if !up_done => { up_done = true; e }
                e = &mut down, if !down_done => { down_done = true; e }
            };
            if end != End::Eof {
                break end;
            }
            if up_done && down_done {
                break End::Eof;
            }
        }
    };
    if end == End::Reset {
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
    end
}

#[cfg(test)]
mod tests {
    use super::Rng;
    use super::*;
    use crate::toxic::Stream;
    use proptest::prelude::*;
    use tokio::io::duplex;

    fn chain(kinds: &[Kind]) -> Chain {
        Arc::new(
            kinds
                .iter()
                .enumerate()
                .map(|(i, k)| Active {
                    id: i as u64 + 1,
                    toxic: Toxic {
                        name: format!("t{i}"),
                        stream: Stream::Downstream,
                        toxicity: 1.0,
                        kind: k.clone(),
                    },
                })
                .collect(),
        )
    }

    fn paused() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    /// Kinds that keep every byte (loss below the rate at which 16 straight losses are
    /// plausible).
    fn keeping() -> impl Strategy<Value = Kind> {
        prop_oneof![
            (0u64..50, 0u64..20).prop_map(|(latency, jitter)| Kind::Latency { latency, jitter }),
            (1u64..10_000).prop_map(|rate| Kind::Bandwidth { rate }),
            (0u64..50).prop_map(|delay| Kind::SlowClose { delay }),
            (1u64..300, 0u64..300, 0u64..2000).prop_map(|(average_size, size_variation, delay)| {
                Kind::Slicer {
                    average_size,
                    size_variation,
                    delay,
                }
            }),
            Just(Kind::Noop),
            (0.0f64..0.3, 1u64..50).prop_map(|(loss_rate, rto)| Kind::Loss { loss_rate, rto }),
        ]
    }

    /// Sends `data` through a direction with `kinds`, then (the toxics removed) `more`;
    /// returns what came out of each phase and the virtual time the second phase took.
    fn run(
        kinds: Vec<Kind>,
        data: Vec<u8>,
        more: Vec<u8>,
        seed: u64,
        pipe: usize,
    ) -> (Vec<u8>, Vec<u8>, Duration, End) {
        // A stalled pipeline fails the case (virtual time jumps to the bound) instead of
        // hanging the test run.
        paused().block_on(async move {
            tokio::time::timeout(
                Duration::from_secs(3600),
                pipeline(kinds, data, more, seed, pipe),
            )
            .await
            .expect("the pipeline stalled for an hour of virtual time")
        })
    }

    async fn pipeline(
        kinds: Vec<Kind>,
        data: Vec<u8>,
        more: Vec<u8>,
        seed: u64,
        pipe: usize,
    ) -> (Vec<u8>, Vec<u8>, Duration, End) {
        {
            let (mut client, src) = duplex(pipe);
            let (dst, mut sink) = duplex(pipe);
            let (tx, rx) = watch::channel(chain(&kinds));
            let bytes = Arc::new(AtomicU64::new(0));
            let pump = tokio::spawn(direction(src, dst, rx, Rng::new(seed, 1, 0), bytes));
            let n = data.len();
            let writer = tokio::spawn(async move {
                // A closing pump (limit_data) makes the rest of the write fail.
                let _ = client.write_all(&data).await;
                client
            });
            let mut first = vec![0u8; n];
            let mut got = 0;
            // Phase one: read until everything came (or the pump closed early).
            while got < n {
                match sink.read(&mut first[got..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got += k,
                }
            }
            first.truncate(got);
            let mut client = writer.await.unwrap();
            // Phase two: the toxics are removed; more bytes must pass at once.
            tx.send_replace(Arc::new(Vec::new()));
            let t = Instant::now();
            // Written while the sink is read: a small pipe could not hold it all.
            tokio::spawn(async move {
                let _ = client.write_all(&more).await;
                let _ = client.shutdown().await;
            });
            let mut second = Vec::new();
            let _ = sink.read_to_end(&mut second).await;
            let took = t.elapsed();
            let end = pump.await.unwrap();
            (first, second, took, end)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn the_pipeline_keeps_bytes_and_order_and_leaves_nothing_behind(
            kinds in proptest::collection::vec(keeping(), 0..5),
            data in proptest::collection::vec(any::<u8>(), 0..20_000),
            more in proptest::collection::vec(any::<u8>(), 1..5_000),
            seed in any::<u64>(),
            pipe in 1usize..8192,
        ) {
            // Goal: through any stack of byte-keeping toxics, bytes out = bytes in, in order; after removal, data passes with no delay.
            let (first, second, took, end) = run(kinds, data.clone(), more.clone(), seed, pipe);
            prop_assert_eq!(first, data);
            prop_assert_eq!(second, more);
            prop_assert_eq!(took, Duration::ZERO, "a removed toxic still delayed data");
            prop_assert_eq!(end, End::Eof);
        }

        #[test]
        fn corrupt_flips_one_bit_per_window_and_keeps_the_length(
            window in 1u64..3000,
            always in any::<bool>(),
            data in proptest::collection::vec(any::<u8>(), 0..20_000),
            seed in any::<u64>(),
            pipe in 1usize..8192,
        ) {
            // Goal: corrupt with probability 1 flips exactly one bit in every whole window
            // (at most one in the last, partial one), whatever the pieces the pump reads;
            // with probability 0 nothing changes; the length never changes.
            let p = if always { 1.0 } else { 0.0 };
            let kinds = vec![Kind::Corrupt { probability: p, window }];
            let (first, second, _, end) = run(kinds, data.clone(), vec![7; 10], seed, pipe);
            prop_assert_eq!(first.len(), data.len());
            prop_assert_eq!(second, vec![7; 10], "removed, it garbles nothing");
            prop_assert_eq!(end, End::Eof);
            for (k, (a, b)) in data.chunks(window as usize).zip(first.chunks(window as usize)).enumerate() {
                let flipped: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
                let whole = a.len() as u64 == window;
                match (always, whole) {
                    (false, _) => prop_assert_eq!(flipped, 0, "window {}", k),
                    (true, true) => prop_assert_eq!(flipped, 1, "window {}", k),
                    (true, false) => prop_assert!(flipped <= 1, "window {}", k),
                }
            }
        }

        #[test]
        fn limit_data_passes_exactly_a_prefix(
            limit in 0u64..10_000,
            data in proptest::collection::vec(any::<u8>(), 1..20_000),
            pipe in 1usize..8192,
        ) {
            // Goal: limit_data N passes the first min(N, len) bytes and closes once N passed.
            let (first, _, _, end) = run(vec![Kind::LimitData { bytes: limit }], data.clone(), vec![1], 0, pipe);
            let want = data.len().min(limit as usize);
            prop_assert_eq!(&first[..], &data[..want]);
            if (data.len() as u64) >= limit {
                prop_assert_eq!(end, End::Close);
            }
        }
    }

    #[test]
    fn total_loss_resets_after_fifteen_retransmissions() {
        // Goal: loss_rate 1 waits rto, 2·rto, … (capped at 120 s) for 15 retransmissions, then resets.
        paused().block_on(async {
            let (mut client, src) = duplex(64);
            let (dst, _sink) = duplex(64);
            let (_tx, rx) = watch::channel(chain(&[Kind::Loss {
                loss_rate: 1.0,
                rto: 200,
            }]));
            let t = Instant::now();
            client.write_all(b"x").await.unwrap();
            let end = direction(src, dst, rx, Rng::new(0, 0, 0), Arc::new(AtomicU64::new(0))).await;
            assert_eq!(end, End::Reset);
            let want: Duration = (0..15)
                .map(|k| (Duration::from_millis(200) * (1 << k)).min(RTO_MAX))
                .sum();
            assert_eq!(t.elapsed(), want);
        });
    }

    #[test]
    fn the_same_seed_draws_the_same_jitter() {
        // Goal: two runs with one seed delay every chunk alike; another seed differs.
        let times = |seed| {
            paused().block_on(async move {
                let (mut client, src) = duplex(1);
                let (dst, mut sink) = duplex(1 << 16);
                let (_tx, rx) = watch::channel(chain(&[Kind::Latency {
                    latency: 100,
                    jitter: 50,
                }]));
                tokio::spawn(direction(
                    src,
                    dst,
                    rx,
                    Rng::new(seed, 3, 1),
                    Arc::new(AtomicU64::new(0)),
                ));
                let start = Instant::now();
                let mut at = Vec::new();
                for i in 0..20u8 {
                    client.write_all(&[i]).await.unwrap();
                    let mut b = [0u8; 1];
                    sink.read_exact(&mut b).await.unwrap();
                    at.push(start.elapsed());
                }
                at
            })
        };
        assert_eq!(times(7), times(7));
        assert_ne!(times(7), times(8));
    }
}
