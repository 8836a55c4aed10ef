//! The logic's events as JSON: what `GET /admin/events` streams (one [`EventRecordDto`]
//! per server-sent event), and what a reader of that stream (the lab) turns back into the
//! logic's [`Event`] — the same vocabulary the simulator observes.
//!
//! Map: [`EventDto`] (`"event"` selects the variant, kebab-case names of [`Event`]'s
//! variants; fields as the logic names them, hashes and ids in hex, classes, links, modes
//! and tasks by name), [`EventRecordDto`] (sequence number, wall time, source).
//!
//! Not covered: the stream itself (the servers' `events` module).

use crate::{OpOutcomeDto, WireError, field_err, hash, idem_key, origin_id, priority};
use serde::{Deserialize, Serialize};
use sovereign_logic::content::ItemId;
use sovereign_logic::io::{Event, OpRefusal, PowerMode, TaskKind};
use sovereign_logic::protocol::{LinkKind, OriginId};
use utoipa::ToSchema;

/// One event of a tower's or the origin's logic.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(tag = "event", rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = Event)]
#[allow(missing_docs)] // the fields are the logic's (sovereign_logic::io::Event)
pub enum EventDto {
    /// A link's health changed.
    LinkHealth { link: String, up: bool },
    /// The active uplink changed (null: none usable).
    ActiveLink {
        from: Option<String>,
        to: Option<String>,
    },
    /// An item version became servable.
    ContentServable {
        item: String,
        version: u64,
        priority: String,
    },
    /// An item is served no more (a re-home found other bytes, or the new origin lacks it).
    ContentWithdrawn { item: String },
    /// A chunk passed verification.
    ChunkVerified {
        sha256: String,
        priority: String,
        bytes: u64,
        link: String,
    },
    /// A chunk failed verification on arrival.
    ChunkRejected { sha256: String, link: String },
    /// A stored chunk failed verification and was quarantined.
    ChunkQuarantined { sha256: String },
    /// A chunk request was sent.
    ChunkRequested {
        sha256: String,
        priority: String,
        bytes: u64,
        link: String,
    },
    /// A device operation became durable and was acknowledged.
    OpAcked { key: String },
    /// A device operation was refused at the edge.
    OpRefused { key: String, reason: String },
    /// The origin confirmed a forwarded operation.
    OpConfirmed { key: String, outcome: OpOutcomeDto },
    /// The origin applied an operation.
    OpApplied { key: String, outcome: OpOutcomeDto },
    /// The power mode changed.
    PowerMode { from: String, to: String },
    /// The origin circuit breaker opened.
    BreakerOpened {},
    /// The breaker closed.
    BreakerClosed {},
    /// A supervised task failed and will restart.
    TaskRestarted { task: String, attempt: u32 },
    /// A supervised task was parked.
    TaskParked { task: String },
    /// Recovery from durable state finished.
    Recovered {
        chunks: u64,
        quarantined: u64,
        outbox: u64,
    },
    /// The adaptive throttle's window changed.
    Throttle { window: u32 },
    /// The tower now trusts `origin`.
    OriginAdopted {
        origin: String,
        rehomed: bool,
        dropped: u64,
    },
    /// Another origin answered in place of the trusted one.
    OriginMismatch {
        expected: String,
        found: Option<String>,
    },
    /// The trusted origin answers again.
    OriginRestored { origin: String },
    /// An operator ordered a re-home.
    RehomeStarted { from: Option<String> },
}

/// One server-sent event of `GET /admin/events`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EventRecord)]
pub struct EventRecordDto {
    /// Position in this server's stream since it started (1, 2, …; a gap means events a
    /// slow reader missed).
    #[schema(minimum = 1)]
    pub seq: u64,
    /// Wall time the server saw it, microseconds since the Unix epoch.
    pub at_unix_us: u64,
    /// `origin`, or the tower's id (`tower-1`).
    pub source: String,
    /// The event.
    pub event: EventDto,
}

fn link(l: LinkKind) -> String {
    l.name().to_string()
}

impl From<&Event> for EventDto {
    fn from(e: &Event) -> Self {
        let hex = |h: &sovereign_logic::content::ChunkHash| h.to_hex();
        let origin = |o: &OriginId| o.to_string();
        match e {
            Event::LinkHealth { link: l, up } => EventDto::LinkHealth {
                link: link(*l),
                up: *up,
            },
            Event::ActiveLink { from, to } => EventDto::ActiveLink {
                from: from.map(link),
                to: to.map(link),
            },
            Event::ContentServable {
                item,
                version,
                priority,
            } => EventDto::ContentServable {
                item: item.0.clone(),
                version: *version,
                priority: priority.to_string(),
            },
            Event::ContentWithdrawn { item } => EventDto::ContentWithdrawn {
                item: item.0.clone(),
            },
            Event::ChunkVerified {
                hash,
                priority,
                bytes,
                link: l,
            } => EventDto::ChunkVerified {
                sha256: hex(hash),
                priority: priority.to_string(),
                bytes: *bytes,
                link: link(*l),
            },
            Event::ChunkRejected { hash, link: l } => EventDto::ChunkRejected {
                sha256: hex(hash),
                link: link(*l),
            },
            Event::ChunkQuarantined { hash } => EventDto::ChunkQuarantined { sha256: hex(hash) },
            Event::ChunkRequested {
                hash,
                priority,
                bytes,
                link: l,
            } => EventDto::ChunkRequested {
                sha256: hex(hash),
                priority: priority.to_string(),
                bytes: *bytes,
                link: link(*l),
            },
            Event::OpAcked { key } => EventDto::OpAcked {
                key: key.0.to_string(),
            },
            Event::OpRefused { key, reason } => EventDto::OpRefused {
                key: key.0.to_string(),
                reason: reason.name().to_string(),
            },
            Event::OpConfirmed { key, outcome } => EventDto::OpConfirmed {
                key: key.0.to_string(),
                outcome: outcome.into(),
            },
            Event::OpApplied { key, outcome } => EventDto::OpApplied {
                key: key.0.to_string(),
                outcome: outcome.into(),
            },
            Event::PowerMode { from, to } => EventDto::PowerMode {
                from: from.name().to_string(),
                to: to.name().to_string(),
            },
            Event::BreakerOpened => EventDto::BreakerOpened {},
            Event::BreakerClosed => EventDto::BreakerClosed {},
            Event::TaskRestarted { task, attempt } => EventDto::TaskRestarted {
                task: task.name().to_string(),
                attempt: *attempt,
            },
            Event::TaskParked { task } => EventDto::TaskParked {
                task: task.name().to_string(),
            },
            Event::Recovered {
                chunks,
                quarantined,
                outbox,
            } => EventDto::Recovered {
                chunks: *chunks,
                quarantined: *quarantined,
                outbox: *outbox,
            },
            Event::Throttle { window } => EventDto::Throttle { window: *window },
            Event::OriginAdopted {
                origin: o,
                rehomed,
                dropped,
            } => EventDto::OriginAdopted {
                origin: origin(o),
                rehomed: *rehomed,
                dropped: *dropped,
            },
            Event::OriginMismatch { expected, found } => EventDto::OriginMismatch {
                expected: origin(expected),
                found: found.as_ref().map(origin),
            },
            Event::OriginRestored { origin: o } => EventDto::OriginRestored { origin: origin(o) },
            Event::RehomeStarted { from } => EventDto::RehomeStarted {
                from: from.as_ref().map(origin),
            },
        }
    }
}

/// The value of `all` that `name` spells, or an error naming `field` and the choices.
fn named<T: Copy>(
    field: &str,
    s: &str,
    all: &[T],
    name: fn(&T) -> &'static str,
) -> Result<T, WireError> {
    all.iter().copied().find(|x| name(x) == s).ok_or_else(|| {
        let choices: Vec<&str> = all.iter().map(name).collect();
        field_err(
            field,
            &format!("one of {}", choices.join(", ")),
            format!("{s:?}"),
        )
    })
}

fn link_kind(field: &str, s: &str) -> Result<LinkKind, WireError> {
    named(field, s, &LinkKind::ALL, |l| l.name())
}

impl EventDto {
    /// The logic's event, validated (names, hashes, keys, origin ids).
    pub fn to_event(&self) -> Result<Event, WireError> {
        let mode = |f: &str, s: &str| named(f, s, &PowerMode::ALL, |m| m.name());
        let task = |s: &str| named("task", s, &TaskKind::ALL, |t| t.name());
        let opt_origin =
            |f: &str, o: &Option<String>| o.as_deref().map(|s| origin_id(f, s)).transpose();
        Ok(match self {
            EventDto::LinkHealth { link, up } => Event::LinkHealth {
                link: link_kind("link", link)?,
                up: *up,
            },
            EventDto::ActiveLink { from, to } => Event::ActiveLink {
                from: from.as_deref().map(|s| link_kind("from", s)).transpose()?,
                to: to.as_deref().map(|s| link_kind("to", s)).transpose()?,
            },
            EventDto::ContentServable {
                item,
                version,
                priority: p,
            } => {
                if item.is_empty() {
                    return Err(field_err("item", "a non-empty item id", "\"\""));
                }
                Event::ContentServable {
                    item: ItemId(item.clone()),
                    version: *version,
                    priority: priority("priority", p)?,
                }
            }
            EventDto::ContentWithdrawn { item } => {
                if item.is_empty() {
                    return Err(field_err("item", "a non-empty item id", "\"\""));
                }
                Event::ContentWithdrawn {
                    item: ItemId(item.clone()),
                }
            }
            EventDto::ChunkVerified {
                sha256,
                priority: p,
                bytes,
                link,
            } => Event::ChunkVerified {
                hash: hash("sha256", sha256)?,
                priority: priority("priority", p)?,
                bytes: *bytes,
                link: link_kind("link", link)?,
            },
            EventDto::ChunkRejected { sha256, link } => Event::ChunkRejected {
                hash: hash("sha256", sha256)?,
                link: link_kind("link", link)?,
            },
            EventDto::ChunkQuarantined { sha256 } => Event::ChunkQuarantined {
                hash: hash("sha256", sha256)?,
            },
            EventDto::ChunkRequested {
                sha256,
                priority: p,
                bytes,
                link,
            } => Event::ChunkRequested {
                hash: hash("sha256", sha256)?,
                priority: priority("priority", p)?,
                bytes: *bytes,
                link: link_kind("link", link)?,
            },
            EventDto::OpAcked { key } => Event::OpAcked {
                key: idem_key("key", key)?,
            },
            EventDto::OpRefused { key, reason } => Event::OpRefused {
                key: idem_key("key", key)?,
                reason: named("reason", reason, &OpRefusal::ALL, |r| r.name())?,
            },
            EventDto::OpConfirmed { key, outcome } => Event::OpConfirmed {
                key: idem_key("key", key)?,
                outcome: outcome.clone().into(),
            },
            EventDto::OpApplied { key, outcome } => Event::OpApplied {
                key: idem_key("key", key)?,
                outcome: outcome.clone().into(),
            },
            EventDto::PowerMode { from, to } => Event::PowerMode {
                from: mode("from", from)?,
                to: mode("to", to)?,
            },
            EventDto::BreakerOpened {} => Event::BreakerOpened,
            EventDto::BreakerClosed {} => Event::BreakerClosed,
            EventDto::TaskRestarted { task: t, attempt } => Event::TaskRestarted {
                task: task(t)?,
                attempt: *attempt,
            },
            EventDto::TaskParked { task: t } => Event::TaskParked { task: task(t)? },
            EventDto::Recovered {
                chunks,
                quarantined,
                outbox,
            } => Event::Recovered {
                chunks: *chunks,
                quarantined: *quarantined,
                outbox: *outbox,
            },
            EventDto::Throttle { window } => Event::Throttle { window: *window },
            EventDto::OriginAdopted {
                origin,
                rehomed,
                dropped,
            } => Event::OriginAdopted {
                origin: origin_id("origin", origin)?,
                rehomed: *rehomed,
                dropped: *dropped,
            },
            EventDto::OriginMismatch { expected, found } => Event::OriginMismatch {
                expected: origin_id("expected", expected)?,
                found: opt_origin("found", found)?,
            },
            EventDto::OriginRestored { origin } => Event::OriginRestored {
                origin: origin_id("origin", origin)?,
            },
            EventDto::RehomeStarted { from } => Event::RehomeStarted {
                from: opt_origin("from", from)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::content::{ChunkHash, Priority};
    use sovereign_logic::protocol::{IdemKey, OpOutcome};

    /// One event of every variant.
    fn every_event() -> Vec<Event> {
        let h = ChunkHash::of(b"c");
        let key = IdemKey("dev-1:7".into());
        let o: OriginId = "0123456789abcdef0123456789abcdef"
            .parse()
            .expect("origin id");
        vec![
            Event::LinkHealth {
                link: LinkKind::Lte,
                up: false,
            },
            Event::ActiveLink {
                from: Some(LinkKind::Fibre),
                to: None,
            },
            Event::ContentServable {
                item: ItemId("news".into()),
                version: 3,
                priority: Priority::P1,
            },
            Event::ContentWithdrawn {
                item: ItemId("news".into()),
            },
            Event::ChunkVerified {
                hash: h,
                priority: Priority::P0,
                bytes: 9,
                link: LinkKind::Satellite,
            },
            Event::ChunkRejected {
                hash: h,
                link: LinkKind::Fibre,
            },
            Event::ChunkQuarantined { hash: h },
            Event::ChunkRequested {
                hash: h,
                priority: Priority::P3,
                bytes: 4,
                link: LinkKind::Lte,
            },
            Event::OpAcked { key: key.clone() },
            Event::OpRefused {
                key: key.clone(),
                reason: OpRefusal::Conflict,
            },
            Event::OpConfirmed {
                key: key.clone(),
                outcome: OpOutcome::Applied { seq: 5 },
            },
            Event::OpApplied {
                key,
                outcome: OpOutcome::Rejected {
                    reason: "amount".into(),
                },
            },
            Event::PowerMode {
                from: PowerMode::Normal,
                to: PowerMode::ShedP3,
            },
            Event::BreakerOpened,
            Event::BreakerClosed,
            Event::TaskRestarted {
                task: TaskKind::Fetch,
                attempt: 2,
            },
            Event::TaskParked {
                task: TaskKind::Forward,
            },
            Event::Recovered {
                chunks: 1,
                quarantined: 2,
                outbox: 3,
            },
            Event::Throttle { window: 8 },
            Event::OriginAdopted {
                origin: o,
                rehomed: true,
                dropped: 1,
            },
            Event::OriginMismatch {
                expected: o,
                found: None,
            },
            Event::OriginRestored { origin: o },
            Event::RehomeStarted { from: Some(o) },
        ]
    }

    #[test]
    fn every_event_reads_back_as_itself_through_json() {
        // Goal: a reader of the stream gets the logic's event back exactly, every variant.
        for e in every_event() {
            let text = serde_json::to_string(&EventDto::from(&e)).expect("serialises");
            let dto: EventDto = crate::from_json(text.as_bytes()).expect("parses");
            assert_eq!(dto.to_event().as_ref(), Ok(&e), "{text}");
        }
    }

    #[test]
    fn bad_events_name_their_field() {
        // Goal: a wrong name, hash or unknown field is an error that says which field.
        let err = |s: &str| match crate::from_json::<EventDto>(s.as_bytes()) {
            Ok(d) => d.to_event().expect_err(s).to_string(),
            Err(e) => e.to_string(),
        };
        let e = err(r#"{"event":"link-health","link":"wifi","up":true}"#);
        assert!(
            e.contains("`link`") && e.contains("fibre, lte, satellite"),
            "{e}"
        );
        let e = err(r#"{"event":"chunk-quarantined","sha256":"zz"}"#);
        assert!(e.contains("`sha256`"), "{e}");
        let e = err(r#"{"event":"power-mode","from":"normal","to":"turbo"}"#);
        assert!(e.contains("`to`"), "{e}");
        let e = err(r#"{"event":"breaker-opened","extra":1}"#);
        assert!(e.contains("extra"), "{e}");
        let e = err(r#"{"event":"no-such-event"}"#);
        assert!(e.contains("no-such-event"), "{e}");
    }
}
