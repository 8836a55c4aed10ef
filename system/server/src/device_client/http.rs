//! The device's side of the tower's device API: one blocking call per exchange, over any
//! [`Transport`] (hyper over TCP in the binary).
//!
//! Every answer is checked before it is believed: a catalog and a manifest are decoded and
//! validated by `sovereign_wire`, an acknowledgement must name the key that was sent.
//! Submissions and status requests carry the device's proof of identity
//! (`Authorization: Device <secret>`, see [`super::identity`]).
//! Errors name the URL, the status and the tower's own `{"error": …}` message.
//!
//! Map: [`Client`], [`ClientError`], [`CatalogDto`], [`Submitted`], [`path_segment`].
//!
//! Towers are reached over `http://` or, with TLS, `https://` (checked against `--ca` or
//! the system's roots: [`Client::tcp_tls`]).
//!
//! Not covered: client certificates, redirects, proxies.

use super::identity::DeviceIdentity;
use crate::api::tower::IDEMPOTENCY_KEY;
use crate::transport::{HyperTransport, Request, Response, Transport, TransportError};
use hyper::http::{HeaderName, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use sovereign_logic::content::Manifest;
use sovereign_logic::protocol::{DeviceId, IdemKey, OpInvalid, OpStatus, Operation, SubmitReply};
use sovereign_wire::{ManifestDto, OpKindDto, OpStatusDto};
use std::sync::Arc;
use std::time::Duration;

/// Header a tower sets on an acknowledgement that replays an earlier one.
pub const REPLAYED: &str = "idempotent-replayed";

/// Why an exchange with the tower failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer at all: connection refused, reset, timed out. A device is often offline;
    /// callers decide whether this is an error.
    #[error("tower unreachable: {0}")]
    Unreachable(#[from] TransportError),
    /// The tower answered with an error status.
    #[error("{url}: the tower answered {status}: {message}")]
    Status {
        /// the URL
        url: String,
        /// the status
        status: StatusCode,
        /// the tower's `error` (and `field`), or the start of the body
        message: String,
    },
    /// The tower answered, but not with what the API promises.
    #[error("{url}: {reason}")]
    Body {
        /// the URL
        url: String,
        /// what was wrong with the answer
        reason: String,
    },
    /// The tower URL is not usable.
    #[error("--tower {url:?}: {reason}")]
    BadUrl {
        /// as given
        url: String,
        /// why
        reason: String,
    },
    /// The client's runtime could not start.
    #[error("starting the HTTP client's runtime: {0}")]
    Runtime(std::io::Error),
    /// The CA file for `https://` towers could not be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// `GET /v1/catalog`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CatalogDto {
    /// The tower's name.
    pub tower: String,
    /// What it serves, one manifest per item (the servable version).
    pub items: Vec<ManifestDto>,
}

/// The tower's answer to a submission, as the device logic understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// The logic's view: `Accepted`, `Duplicate`, `InFlight`, `Conflict` or `Retry`.
    pub reply: SubmitReply,
    /// For a person: the status and the tower's message.
    pub detail: String,
}

/// The body of `POST /v1/ops`.
#[derive(Serialize)]
struct Submission<'a> {
    device: String,
    op: &'a OpKindDto,
}

/// Percent-encode one URL path segment (an item id may hold spaces or slashes).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The tower's `{"error": …, "field": …}` message, or the start of the body.
fn tower_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
        field: Option<String>,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error,
            field: Some(f),
        }) => format!("{error} (field {f})"),
        Ok(ErrorBody { error, field: None }) => error,
        Err(_) => {
            let s: String = String::from_utf8_lossy(body).chars().take(200).collect();
            if s.trim().is_empty() {
                "(no body)".to_string()
            } else {
                s.trim().to_string()
            }
        }
    }
}

/// The `field` of a tower's JSON error body, if it names one.
fn error_field(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        field: Option<String>,
    }
    serde_json::from_slice::<ErrorBody>(body).ok()?.field
}

/// The operation fields a tower's 422 can name, as the logic spells them.
fn static_field(field: &str) -> &'static str {
    ["key", "op.community", "op.nation", "op.amount_minor"]
        .into_iter()
        .find(|f| *f == field)
        .unwrap_or("op")
}

/// A device's connection to one tower. Blocking: each call runs the exchange on the
/// client's own runtime, so it must not be called from inside another tokio runtime.
pub struct Client {
    base: String,
    transport: Arc<dyn Transport>,
    rt: tokio::runtime::Runtime,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Check a tower base URL: `http://host:port` or `https://host:port`, optionally with a
/// trailing `/`.
fn check_base(url: &str) -> Result<String, ClientError> {
    let bad = |reason: &str| ClientError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&format!("not a URL ({e})")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("expected http://HOST:PORT or https://HOST:PORT"));
    }
    if uri.authority().is_none() {
        return Err(bad("no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("expected no path or query, only http(s)://HOST:PORT"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

impl Client {
    /// A client of the tower at `base` (`http://host:port`) over TCP, on a runtime of
    /// its own (two worker threads); `timeout` bounds each exchange.
    pub fn tcp(base: &str, timeout: Duration) -> Result<Client, ClientError> {
        let base = check_base(base)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        let transport = {
            let _guard = rt.enter();
            Arc::new(HyperTransport::tcp()) as Arc<dyn Transport>
        };
        Ok(Client {
            base,
            transport,
            rt,
            timeout,
        })
    }

    /// A client of the tower at `base` (`http://` or `https://host:port`) over TCP, on a
    /// runtime of its own; an `https://` tower's certificate is checked against the CA
    /// certificates in `ca` (a PEM file, `--ca`) or, without one, the system's roots.
    pub fn tcp_tls(
        base: &str,
        timeout: Duration,
        ca: Option<&std::path::Path>,
    ) -> Result<Client, ClientError> {
        let base = check_base(base)?;
        let tls = crate::tls::client_config(ca, "--ca", base.starts_with("https://"))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        let transport = {
            let _guard = rt.enter();
            Arc::new(HyperTransport::tcp_tls(tls)) as Arc<dyn Transport>
        };
        Ok(Client {
            base,
            transport,
            rt,
            timeout,
        })
    }

    /// A client over any transport (tests), on `rt`.
    pub fn with_transport(
        base: &str,
        transport: Arc<dyn Transport>,
        rt: tokio::runtime::Runtime,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        Ok(Client {
            base: check_base(base)?,
            transport,
            rt,
            timeout,
        })
    }

    /// The tower's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send `req` and wait for the whole answer.
    pub fn send(&self, req: Request) -> Result<Response, ClientError> {
        Ok(self.rt.block_on(self.transport.send(req))?)
    }

    /// GET `path` with extra headers.
    pub fn get(
        &self,
        path: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Response, ClientError> {
        let mut req = Request::get(self.url(path), self.timeout);
        req.headers = headers;
        self.send(req)
    }

    /// An error for an answer whose status was not expected.
    pub fn status_error(&self, path: &str, resp: &Response) -> ClientError {
        ClientError::Status {
            url: self.url(path),
            status: resp.status,
            message: tower_message(&resp.body),
        }
    }

    /// `GET /v1/catalog`: the decoded catalog and the raw body.
    pub fn catalog(&self) -> Result<(CatalogDto, bytes::Bytes), ClientError> {
        let path = "/v1/catalog";
        let resp = self.get(path, Vec::new())?;
        if resp.status != StatusCode::OK {
            return Err(self.status_error(path, &resp));
        }
        let cat: CatalogDto =
            sovereign_wire::from_json(&resp.body).map_err(|e| ClientError::Body {
                url: self.url(path),
                reason: format!("catalog: {e}"),
            })?;
        for (i, m) in cat.items.iter().enumerate() {
            m.to_manifest().map_err(|e| ClientError::Body {
                url: self.url(path),
                reason: format!("catalog items[{i}]: {e}"),
            })?;
        }
        Ok((cat, resp.body))
    }

    /// `GET /v1/items/{id}/manifest`, validated, and checked to describe `item`.
    pub fn manifest(&self, item: &str) -> Result<Manifest, ClientError> {
        let path = format!("/v1/items/{}/manifest", path_segment(item));
        let resp = self.get(&path, Vec::new())?;
        if resp.status != StatusCode::OK {
            return Err(self.status_error(&path, &resp));
        }
        let body_err = |reason: String| ClientError::Body {
            url: self.url(&path),
            reason,
        };
        let dto: ManifestDto = sovereign_wire::from_json(&resp.body)
            .map_err(|e| body_err(format!("manifest: {e}")))?;
        let m = dto
            .to_manifest()
            .map_err(|e| body_err(format!("manifest: {e}")))?;
        if m.item.as_str() != item {
            return Err(body_err(format!(
                "asked for the manifest of {item:?}, got one for {:?}",
                m.item.as_str()
            )));
        }
        if let Some(etag) = resp.headers.get(header::ETAG) {
            if etag.as_bytes() != m.etag().as_bytes() {
                return Err(body_err(format!(
                    "the manifest's ETag {etag:?} is not its sha256 {}",
                    m.etag()
                )));
            }
        }
        Ok(m)
    }

    /// `POST /v1/ops` with the operation's key as `Idempotency-Key`, as `identity`, the
    /// answer mapped to the logic's [`SubmitReply`]: 202 → `Accepted` (`Duplicate` when
    /// marked `idempotent-replayed`; a 200 is a replay too), 409 → `InFlight`, 422 naming
    /// `Idempotency-Key` → `Conflict`, another 422 → `Invalid`, 403 → `Forbidden`, anything
    /// else → `Retry`. No answer at all is [`ClientError::Unreachable`].
    pub fn submit(
        &self,
        op: &Operation,
        identity: &DeviceIdentity,
    ) -> Result<Submitted, ClientError> {
        let path = "/v1/ops";
        let kind = OpKindDto::from(&op.kind);
        let body = submission_body(op.device, &kind);
        let key = HeaderValue::from_str(&op.key.0).map_err(|_| ClientError::Body {
            url: self.url(path),
            reason: format!("the key {:?} cannot be a header value", op.key.0),
        })?;
        let req = Request::post_json(self.url(path), body, self.timeout)
            .header(HeaderName::from_static(IDEMPOTENCY_KEY), key)
            .header(header::AUTHORIZATION, auth_value(identity));
        let resp = self.send(req)?;
        Ok(map_submit(&op.key.0, &resp))
    }

    /// `GET /v1/ops/{key}` as `identity`: what the tower knows of the operation.
    pub fn op_status(
        &self,
        key: &IdemKey,
        identity: &DeviceIdentity,
    ) -> Result<OpStatus, ClientError> {
        let path = format!("/v1/ops/{}", path_segment(&key.0));
        let req = Request::get(self.url(&path), self.timeout)
            .header(header::AUTHORIZATION, auth_value(identity));
        let resp = self.send(req)?;
        if resp.status != StatusCode::OK {
            return Err(self.status_error(&path, &resp));
        }
        let dto: OpStatusDto =
            sovereign_wire::from_json(&resp.body).map_err(|e| ClientError::Body {
                url: self.url(&path),
                reason: e.to_string(),
            })?;
        let (k, status) = dto.to_status().map_err(|e| ClientError::Body {
            url: self.url(&path),
            reason: e.to_string(),
        })?;
        if &k != key {
            return Err(ClientError::Body {
                url: self.url(&path),
                reason: format!("the tower answered for key {:?}", k.0),
            });
        }
        Ok(status)
    }
}

fn auth_value(identity: &DeviceIdentity) -> HeaderValue {
    // `Device ` and hex digits: always a valid header value.
    HeaderValue::from_str(&identity.authorization()).unwrap_or(HeaderValue::from_static(""))
}

/// The JSON body of a submission: `{"device":"<identity>","op":{…}}`.
pub fn submission_body(device: DeviceId, op: &OpKindDto) -> Vec<u8> {
    // Plain structs of strings and integers: serialising cannot fail.
    serde_json::to_vec(&Submission {
        device: device.hex(),
        op,
    })
    .unwrap_or_default()
}

/// Map a tower's answer to a submission onto the logic's [`SubmitReply`].
pub fn map_submit(key: &str, resp: &Response) -> Submitted {
    let status = resp.status;
    let message = || tower_message(&resp.body);
    let reply = match status.as_u16() {
        200 | 202 => {
            #[derive(Deserialize)]
            struct Ack {
                key: Option<String>,
            }
            let acked = serde_json::from_slice::<Ack>(&resp.body)
                .ok()
                .and_then(|a| a.key);
            if let Some(other) = acked.filter(|k| k != key) {
                // Never drop an operation on the strength of someone else's receipt.
                return Submitted {
                    reply: SubmitReply::Retry {
                        reason: format!(
                            "{status}: the tower acknowledged key {other:?}, not {key:?}"
                        ),
                    },
                    detail: format!("{status}: acknowledgement for the wrong key {other:?}"),
                };
            }
            let replayed = resp
                .headers
                .get(REPLAYED)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
            if replayed || status == StatusCode::OK {
                SubmitReply::Duplicate
            } else {
                SubmitReply::Accepted
            }
        }
        409 => SubmitReply::InFlight,
        422 => match error_field(&resp.body).as_deref() {
            Some("Idempotency-Key") | None => SubmitReply::Conflict,
            Some(field) => SubmitReply::Invalid {
                invalid: OpInvalid {
                    field: static_field(field),
                    reason: message(),
                },
            },
        },
        403 => SubmitReply::Forbidden { reason: message() },
        _ => SubmitReply::Retry {
            reason: format!("{status}: {}", message()),
        },
    };
    let detail = match &reply {
        SubmitReply::Accepted => "accepted: durable at the tower".to_string(),
        SubmitReply::Duplicate => "accepted earlier: the tower already held it".to_string(),
        SubmitReply::Retry { reason } => reason.clone(),
        SubmitReply::InFlight
        | SubmitReply::Conflict
        | SubmitReply::Forbidden { .. }
        | SubmitReply::Invalid { .. } => format!("{status}: {}", message()),
    };
    Submitted { reply, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, replayed: bool, body: &str) -> Response {
        let mut headers = hyper::http::HeaderMap::new();
        if replayed {
            headers.insert(REPLAYED, HeaderValue::from_static("true"));
        }
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn tower_answers_map_onto_the_logic_replies() {
        // Goal: each status of POST /v1/ops means what the tower's API says it means.
        let ok = r#"{"key":"1:00000001","status":"accepted"}"#;
        let r = |s, rep, b| map_submit("1:00000001", &resp(s, rep, b)).reply;
        assert_eq!(r(202, false, ok), SubmitReply::Accepted);
        assert_eq!(r(202, true, ok), SubmitReply::Duplicate);
        assert_eq!(r(200, false, ok), SubmitReply::Duplicate);
        assert_eq!(r(409, false, r#"{"error":"busy"}"#), SubmitReply::InFlight);
        assert_eq!(r(422, false, r#"{"error":"x"}"#), SubmitReply::Conflict);
        assert_eq!(
            r(422, false, r#"{"error":"x","field":"Idempotency-Key"}"#),
            SubmitReply::Conflict
        );
        assert!(matches!(
            r(422, false, r#"{"error":"zero","field":"op.amount_minor"}"#),
            SubmitReply::Invalid { invalid } if invalid.field == "op.amount_minor"
        ));
        assert!(
            matches!(r(403, false, r#"{"error":"not yours"}"#), SubmitReply::Forbidden { reason } if reason.contains("not yours"))
        );
        assert!(
            matches!(r(503, false, r#"{"error":"disk"}"#), SubmitReply::Retry { reason } if reason.contains("disk"))
        );
        assert!(matches!(r(400, false, "junk"), SubmitReply::Retry { .. }));
        // An acknowledgement for another key acknowledges nothing.
        let other = r#"{"key":"9:00000001","status":"accepted"}"#;
        assert!(matches!(r(202, false, other), SubmitReply::Retry { .. }));
    }

    #[test]
    fn item_ids_are_percent_encoded() {
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(path_segment("alert-1.v_2~"), "alert-1.v_2~");
    }

    #[test]
    fn tower_urls_are_checked() {
        assert_eq!(check_base("http://h:1/").unwrap(), "http://h:1");
        assert_eq!(check_base("https://h:1").unwrap(), "https://h:1");
        assert!(check_base("ftp://h:1").is_err());
        assert!(check_base("http://h:1/v1").is_err());
        assert!(check_base("h:1").is_err());
    }
}
