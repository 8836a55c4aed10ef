//! Toxics: their kinds, Toxiproxy's JSON shape, and validation of what a client sends.
//!
//! Map: [`Toxic`] is one configured toxic (name, stream, toxicity, [`Kind`] with its
//! attributes); [`Toxic::from_json`] parses a create request, [`Toxic::merged`] an update
//! (partial attributes over the current ones); [`Toxic::to_json`] is the response shape.
//! Attribute names, units and defaults are Toxiproxy 2.x's (every attribute defaults to 0);
//! `loss` is this proxy's own (see the crate doc for its meaning).
//!
//! Not here: what a toxic does to bytes (`pump`), where toxics live (`state`).

use crate::ApiError;
use serde_json::{Map, Value, json};

/// Most milliseconds (or microseconds, for the slicer) any time attribute may hold: one
/// day. Larger values are refused rather than overflowing a deadline.
pub const TIME_MAX: u64 = 86_400_000;
/// Most bytes a size attribute may hold (1 TiB).
pub const SIZE_MAX: u64 = 1 << 40;

/// Which way a toxic acts: `upstream` is client → upstream server, `downstream` is
/// upstream server → client (Toxiproxy's terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stream {
    Upstream,
    Downstream,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic's kind and attributes (Toxiproxy's units: ms unless said otherwise).
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Delay every chunk by `latency` ± `jitter` ms (uniform).
    Latency { latency: u64, jitter: u64 },
    /// Limit throughput to `rate` KB/s (1 KB = 1000 bytes); 0 = unlimited.
    Bandwidth { rate: u64 },
    /// Delay the close (EOF) by `delay` ms.
    SlowClose { delay: u64 },
    /// Drop all data; close the connection `timeout` ms after the toxic took effect
    /// (0 = never close: data is dropped until the toxic is removed).
    Timeout { timeout: u64 },
    /// On the first data after the toxic took effect, wait `timeout` ms and reset the
    /// connection (RST: the client sees ECONNRESET); data is dropped.
    ResetPeer { timeout: u64 },
    /// Cut chunks into slices of `average_size` ± `size_variation` bytes, `delay` µs
    /// apart.
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay: u64,
    },
    /// Pass `bytes` bytes, then close the connection.
    LimitData { bytes: u64 },
    /// Nothing (a placeholder for tests and tooling).
    Noop,
    /// Packet loss as TCP shows it to applications: each chunk is lost with probability
    /// `loss_rate` and then retransmitted after `rto` ms, doubling per consecutive loss
    /// (bytes and order are kept); after 15 consecutive losses the connection is reset.
    Loss { loss_rate: f64, rto: u64 },
    /// Bytes garbled in flight (a noisy radio link whose errors get past the link
    /// layer): the stream is cut into windows of `window` bytes, and in each window one bit
    /// of one byte (both drawn uniformly) is flipped with probability `probability`. Bytes
    /// are neither added nor removed.
    Corrupt { probability: f64, window: u64 },
}

/// The corrupt toxic's default window, in bytes (the simulator's average chunk).
pub const CORRUPT_WINDOW_DEFAULT: u64 = 8192;

/// Retransmissions of one chunk before the loss toxic gives up and resets (Linux's
/// `tcp_retries2` default).
pub const LOSS_RETRIES: u32 = 15;
/// The loss toxic's default retransmission timeout (Linux's minimum RTO), in ms.
pub const LOSS_RTO_DEFAULT: u64 = 200;

impl Kind {
    /// Toxiproxy's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Latency { .. } => "latency",
            Kind::Bandwidth { .. } => "bandwidth",
            Kind::SlowClose { .. } => "slow_close",
            Kind::Timeout { .. } => "timeout",
            Kind::ResetPeer { .. } => "reset_peer",
            Kind::Slicer { .. } => "slicer",
            Kind::LimitData { .. } => "limit_data",
            Kind::Noop => "noop",
            Kind::Loss { .. } => "loss",
            Kind::Corrupt { .. } => "corrupt",
        }
    }

    fn attributes(&self) -> Value {
        match *self {
            Kind::Latency { latency, jitter } => json!({"latency": latency, "jitter": jitter}),
            Kind::Bandwidth { rate } => json!({"rate": rate}),
            Kind::SlowClose { delay } => json!({"delay": delay}),
            Kind::Timeout { timeout } | Kind::ResetPeer { timeout } => json!({"timeout": timeout}),
            Kind::Slicer {
                average_size,
                size_variation,
                delay,
            } => json!({
                "average_size": average_size, "size_variation": size_variation, "delay": delay
            }),
            Kind::LimitData { bytes } => json!({"bytes": bytes}),
            Kind::Noop => json!({}),
            Kind::Loss { loss_rate, rto } => json!({"loss_rate": loss_rate, "rto": rto}),
            Kind::Corrupt {
                probability,
                window,
            } => json!({"probability": probability, "window": window}),
        }
    }

    /// Builds a kind from its type name and attributes; a missing attribute is 0 (the
    /// loss toxic's `rto`: 200), an unknown one or one of the wrong type is refused.
    fn build(type_name: &str, attrs: &Map<String, Value>) -> Result<Kind, ApiError> {
        let allowed: &[&str] = match type_name {
            "latency" => &["latency", "jitter"],
            "bandwidth" => &["rate"],
            "slow_close" => &["delay"],
            "timeout" | "reset_peer" => &["timeout"],
            "slicer" => &["average_size", "size_variation", "delay"],
            "limit_data" => &["bytes"],
            "noop" => &[],
            "loss" => &["loss_rate", "rto"],
            "corrupt" => &["probability", "window"],
            other => {
                return Err(ApiError::bad(format!(
                    "invalid toxic type: {other:?}; expected one of latency, bandwidth, \
                     slow_close, timeout, reset_peer, slicer, limit_data, noop, loss, corrupt"
                )));
            }
        };
        if let Some(k) = attrs.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad(format!(
                "unknown attribute {k:?} for a {type_name} toxic; expected {allowed:?}"
            )));
        }
        let int = |key: &str, max: u64| -> Result<u64, ApiError> {
            match attrs.get(key) {
                None => Ok(0),
                Some(v) => match v.as_u64() {
                    Some(n) if n <= max => Ok(n),
                    Some(n) => Err(ApiError::bad(format!(
                        "attribute {key:?} of a {type_name} toxic is {n}; at most {max}"
                    ))),
                    None => Err(ApiError::bad(format!(
                        "attribute {key:?} of a {type_name} toxic must be a non-negative \
                         integer, not {v}"
                    ))),
                },
            }
        };
        let unit = |key: &str| -> Result<f64, ApiError> {
            match attrs.get(key) {
                None => Ok(0.0),
                Some(v) => match v.as_f64() {
                    Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
                    _ => Err(ApiError::bad(format!(
                        "attribute {key:?} of a {type_name} toxic must be a number from 0 to 1, not {v}"
                    ))),
                },
            }
        };
        Ok(match type_name {
            "corrupt" => {
                let window = if attrs.contains_key("window") {
                    int("window", SIZE_MAX)?
                } else {
                    CORRUPT_WINDOW_DEFAULT
                };
                if window == 0 {
                    return Err(ApiError::bad(
                        "attribute \"window\" of a corrupt toxic must be at least 1 byte",
                    ));
                }
                Kind::Corrupt {
                    probability: unit("probability")?,
                    window,
                }
            }
            "latency" => Kind::Latency {
                latency: int("latency", TIME_MAX)?,
                jitter: int("jitter", TIME_MAX)?,
            },
            "bandwidth" => Kind::Bandwidth {
                rate: int("rate", SIZE_MAX)?,
            },
            "slow_close" => Kind::SlowClose {
                delay: int("delay", TIME_MAX)?,
            },
            "timeout" => Kind::Timeout {
                timeout: int("timeout", TIME_MAX)?,
            },
            "reset_peer" => Kind::ResetPeer {
                timeout: int("timeout", TIME_MAX)?,
            },
            "slicer" => {
                let average_size = int("average_size", SIZE_MAX)?;
                if average_size == 0 {
                    return Err(ApiError::bad(
                        "attribute \"average_size\" of a slicer toxic must be at least 1",
                    ));
                }
                Kind::Slicer {
                    average_size,
                    size_variation: int("size_variation", SIZE_MAX)?,
                    delay: int("delay", TIME_MAX)?,
                }
            }
            "limit_data" => Kind::LimitData {
                bytes: int("bytes", SIZE_MAX)?,
            },
            "noop" => Kind::Noop,
            _ => {
                let loss_rate = unit("loss_rate")?;
                let rto = if attrs.contains_key("rto") {
                    int("rto", TIME_MAX)?
                } else {
                    LOSS_RTO_DEFAULT
                };
                if rto == 0 {
                    return Err(ApiError::bad(
                        "attribute \"rto\" of a loss toxic must be at least 1 ms",
                    ));
                }
                Kind::Loss { loss_rate, rto }
            }
        })
    }
}

/// One configured toxic.
#[derive(Clone, Debug, PartialEq)]
pub struct Toxic {
    pub name: String,
    pub stream: Stream,
    /// Probability (0–1) that the toxic applies to a given connection, drawn once per
    /// connection when the toxic first reaches it.
    pub toxicity: f64,
    pub kind: Kind,
}

/// Checks a proxy or toxic name: 1–64 of `A-Z a-z 0-9 _ . -` (they appear in URL paths
/// and metric labels).
pub fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "{what} name {name:?} must be 1-64 characters of A-Z a-z 0-9 _ . -"
        )))
    }
}

fn stream_of(v: Option<&Value>) -> Result<Option<Stream>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "upstream" => Ok(Some(Stream::Upstream)),
        Some(Value::String(s)) if s == "downstream" => Ok(Some(Stream::Downstream)),
        Some(other) => Err(ApiError::bad(format!(
            "stream was invalid ({other}), can be either upstream or downstream"
        ))),
    }
}

fn toxicity_of(v: Option<&Value>) -> Result<Option<f64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => Ok(Some(t)),
            _ => Err(ApiError::bad(format!(
                "toxicity must be a number between 0 and 1, not {v}"
            ))),
        },
    }
}

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::bad(format!("expected a JSON object, got {body}")))
}

fn attributes_of(body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    match body.get("attributes") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(ApiError::bad(format!(
            "attributes must be an object, not {other}"
        ))),
    }
}

fn refuse_unknown(body: &Map<String, Value>) -> Result<(), ApiError> {
    const FIELDS: [&str; 5] = ["name", "type", "stream", "toxicity", "attributes"];
    match body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad(format!(
            "unknown toxic field {k:?}; expected {FIELDS:?}"
        ))),
        None => Ok(()),
    }
}

impl Toxic {
    /// Parses a create request (Toxiproxy's shape): `type` required, `stream` default
    /// downstream, `toxicity` default 1, `name` default `<type>_<stream>`.
    pub fn from_json(body: &Value) -> Result<Toxic, ApiError> {
        let body = object(body)?;
        refuse_unknown(body)?;
        let type_name = match body.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(other) => {
                return Err(ApiError::bad(format!("type must be a string, not {other}")));
            }
            None => return Err(ApiError::bad("missing required field: type")),
        };
        let kind = Kind::build(type_name, &attributes_of(body)?)?;
        let stream = stream_of(body.get("stream"))?.unwrap_or(Stream::Downstream);
        let toxicity = toxicity_of(body.get("toxicity"))?.unwrap_or(1.0);
        let name = match body.get("name") {
            None | Some(Value::Null) => format!("{}_{}", kind.type_name(), stream.name()),
            Some(Value::String(n)) if n.is_empty() => {
                format!("{}_{}", kind.type_name(), stream.name())
            }
            Some(Value::String(n)) => n.clone(),
            Some(other) => {
                return Err(ApiError::bad(format!("name must be a string, not {other}")));
            }
        };
        check_name("toxic", &name)?;
        Ok(Toxic {
            name,
            stream,
            toxicity,
            kind,
        })
    }

    /// This toxic updated by a request: `toxicity` and the given attributes replace the
    /// current ones; `type`, `stream` and `name` may be repeated but not changed.
    pub fn merged(&self, body: &Value) -> Result<Toxic, ApiError> {
        let body = object(body)?;
        refuse_unknown(body)?;
        if let Some(t) = body.get("type").filter(|t| !t.is_null()) {
            if t.as_str() != Some(self.kind.type_name()) {
                return Err(ApiError::bad(format!(
                    "a toxic's type cannot change (it is {})",
                    self.kind.type_name()
                )));
            }
        }
        if let Some(s) = stream_of(body.get("stream"))? {
            if s != self.stream {
                return Err(ApiError::bad(format!(
                    "a toxic's stream cannot change (it is {})",
                    self.stream.name()
                )));
            }
        }
        if let Some(n) = body.get("name").filter(|n| !n.is_null()) {
            if n.as_str() != Some(self.name.as_str()) {
                return Err(ApiError::bad(format!(
                    "a toxic's name cannot change (it is {})",
                    self.name
                )));
            }
        }
        let mut attrs = match self.kind.attributes() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        attrs.extend(attributes_of(body)?);
        Ok(Toxic {
            name: self.name.clone(),
            stream: self.stream,
            toxicity: toxicity_of(body.get("toxicity"))?.unwrap_or(self.toxicity),
            kind: Kind::build(self.kind.type_name(), &attrs)?,
        })
    }

    /// Toxiproxy's response shape.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.name(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_toxiproxy() {
        // Goal: a bare `{"type": "latency"}` gets Toxiproxy's defaults.
        let t = Toxic::from_json(&json!({"type": "latency"})).unwrap();
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, Stream::Downstream);
        assert_eq!(t.toxicity, 1.0);
        assert_eq!(
            t.kind,
            Kind::Latency {
                latency: 0,
                jitter: 0
            }
        );
        let l = Toxic::from_json(&json!({"type": "loss", "stream": "upstream"})).unwrap();
        assert_eq!(l.name, "loss_upstream");
        assert_eq!(
            l.kind,
            Kind::Loss {
                loss_rate: 0.0,
                rto: LOSS_RTO_DEFAULT
            }
        );
    }

    #[test]
    fn corrupt_defaults_its_window_and_refuses_bad_attributes() {
        // Goal: `corrupt` (ours) takes a probability 0-1 and a window of at least 1 byte
        // (default the simulator's average chunk); anything else is a 400 with why.
        let c = Toxic::from_json(&json!({"type": "corrupt", "attributes": {"probability": 0.5}}))
            .unwrap();
        assert_eq!(c.name, "corrupt_downstream");
        assert_eq!(
            c.kind,
            Kind::Corrupt {
                probability: 0.5,
                window: CORRUPT_WINDOW_DEFAULT
            }
        );
        for bad in [
            json!({"probability": 1.5}),
            json!({"probability": "x"}),
            json!({"window": 0}),
            json!({"window": -3}),
            json!({"flips": 1}),
        ] {
            let e = Toxic::from_json(&json!({"type": "corrupt", "attributes": bad}));
            assert!(e.is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn an_update_merges_attributes() {
        // Goal: an update changes only what it names.
        let t = Toxic::from_json(
            &json!({"type": "latency", "attributes": {"latency": 5, "jitter": 2}}),
        )
        .unwrap();
        let u = t.merged(&json!({"attributes": {"latency": 9}})).unwrap();
        assert_eq!(
            u.kind,
            Kind::Latency {
                latency: 9,
                jitter: 2
            }
        );
        assert!(t.merged(&json!({"stream": "upstream"})).is_err());
        assert!(t.merged(&json!({"attributes": {"latency": -1}})).is_err());
    }
}
