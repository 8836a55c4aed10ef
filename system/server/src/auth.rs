//! Admin authentication: bearer tokens, one per role, checked in constant time.
//!
//! The admin listener accepts `Authorization: Bearer <token>`. Up to three tokens are
//! configured, one per [`Role`]: `viewer` reads (status, links, power, faults, audit,
//! ledger), `operator` publishes content, `chaos` injects and clears faults. Operator and
//! chaos each imply viewer; neither implies the other (an operator cannot break things,
//! a chaos engineer cannot publish).
//!
//! Lookup hashes the presented token with SHA-256 and compares the digest with every
//! configured digest, accumulating the differences without an early exit, so the time
//! taken does not say which token (or how much of one) matched. Only digests are kept;
//! a caller is identified in logs and the audit trail by [`Caller::token_id`], the first
//! 8 hex digits of the digest — never by the token.
//!
//! With no token configured every admin call is refused (fail closed) with a message that
//! says how to configure one.
//!
//! Map: [`Role`] (+ [`Role::grants`], flag and environment names), [`Tokens`] (the
//! configured digests; [`Tokens::new`] validates), [`TokenConfigError`] (start-up
//! errors), [`Caller`] (who is calling), [`require`] (the check handlers call),
//! [`AuthError`] (401/403 with a JSON body; `IntoResponse`), [`TOKEN_CHARS_MIN`],
//! [`TOKEN_CHARS_MAX`].
//!
//! Not covered: token rotation without a restart, per-endpoint scopes finer than the three
//! roles, rate limiting of failed attempts (the admin listener is meant for loopback or a
//! management network; TLS on it is an option of `serve`).

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::fmt;

/// Shortest token accepted at start-up, in characters: 16 random characters of a
/// base64/hex alphabet are 64–96 bits, out of reach of online guessing.
pub const TOKEN_CHARS_MIN: usize = 16;
/// Longest token accepted at start-up, in characters (a bound on header size).
pub const TOKEN_CHARS_MAX: usize = 1024;
const _: () = assert!(TOKEN_CHARS_MIN <= TOKEN_CHARS_MAX);

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Role {
    /// Read-only: status, links, power, faults, audit trail, ledger.
    Viewer,
    /// Viewer plus content operations (publish).
    Operator,
    /// Viewer plus fault injection (POST/DELETE /admin/faults).
    Chaos,
}

impl Role {
    /// All roles, in configuration order.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Chaos];

    /// Lower-case name, as in the audit trail and error messages.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Chaos => "chaos",
        }
    }

    /// The command-line flag that sets this role's token.
    pub const fn flag(self) -> &'static str {
        match self {
            Role::Viewer => "--admin-token-viewer",
            Role::Operator => "--admin-token-operator",
            Role::Chaos => "--admin-token-chaos",
        }
    }

    /// The environment variable that sets this role's token.
    pub const fn env_var(self) -> &'static str {
        match self {
            Role::Viewer => "SOVEREIGN_ADMIN_TOKEN_VIEWER",
            Role::Operator => "SOVEREIGN_ADMIN_TOKEN_OPERATOR",
            Role::Chaos => "SOVEREIGN_ADMIN_TOKEN_CHAOS",
        }
    }

    /// Whether a caller with this role may do what `needed` allows. Every role grants
    /// viewer; operator and chaos grant only themselves beyond that.
    pub const fn grants(self, needed: Role) -> bool {
        matches!(
            (self, needed),
            (_, Role::Viewer) | (Role::Operator, Role::Operator) | (Role::Chaos, Role::Chaos)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "role: expected viewer, operator or chaos, got {s:?}"
                ))
            })
    }
}

/// Why the configured tokens were refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenConfigError {
    /// A token is shorter than [`TOKEN_CHARS_MIN`].
    #[error(
        "admin token for role {role} ({flag} / {env}) is {chars} characters long; expected at least {min} (e.g. `openssl rand -hex 16`)",
        role = role.name(), flag = role.flag(), env = role.env_var(), min = TOKEN_CHARS_MIN
    )]
    TooShort {
        /// whose token
        role: Role,
        /// its length in characters
        chars: usize,
    },
    /// A token is longer than [`TOKEN_CHARS_MAX`].
    #[error(
        "admin token for role {role} ({flag} / {env}) is {chars} characters long; expected at most {max}",
        role = role.name(), flag = role.flag(), env = role.env_var(), max = TOKEN_CHARS_MAX
    )]
    TooLong {
        /// whose token
        role: Role,
        /// its length in characters
        chars: usize,
    },
    /// A token has a character that cannot appear in a bearer token header.
    #[error(
        "admin token for role {role} ({flag} / {env}) has a character outside visible ASCII (position {position}); expected letters, digits and punctuation only",
        role = role.name(), flag = role.flag(), env = role.env_var()
    )]
    BadCharacter {
        /// whose token
        role: Role,
        /// 0-based character position
        position: usize,
    },
    /// Two roles were given the same token: a call could not say which role it has.
    #[error(
        "admin tokens for roles {first} and {second} are identical; expected a different token per role"
    )]
    Reused {
        /// the first role
        first: Role,
        /// the second role with the same token
        second: Role,
    },
}

/// SHA-256 of a token.
type Digest32 = [u8; 32];

fn digest(token: &[u8]) -> Digest32 {
    Sha256::digest(token).into()
}

/// The first 8 hex digits of a digest: a stable, non-secret name for a token.
fn token_id(d: &Digest32) -> String {
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// One configured token: its role and digest (the token itself is not kept).
#[derive(Clone)]
struct Slot {
    role: Role,
    digest: Digest32,
    id: String,
}

/// The configured admin tokens (digests only). Cheap to clone; share it in the router's
/// state.
#[derive(Clone)]
pub struct Tokens {
    slots: Vec<Slot>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Token ids only: never the tokens, never the digests in full.
        let mut l = f.debug_list();
        for s in &self.slots {
            l.entry(&format_args!("{}:{}", s.role, s.id));
        }
        l.finish()
    }
}

impl Tokens {
    /// Validate and keep the configured tokens, one optional token per role. Each must be
    /// [`TOKEN_CHARS_MIN`]..=[`TOKEN_CHARS_MAX`] visible ASCII characters, and no two
    /// roles may share a token. `Tokens::new(None, None, None)` is valid: every admin call
    /// is then refused.
    pub fn new(
        viewer: Option<String>,
        operator: Option<String>,
        chaos: Option<String>,
    ) -> Result<Tokens, TokenConfigError> {
        let mut slots: Vec<Slot> = Vec::with_capacity(3);
        for (role, token) in [
            (Role::Viewer, viewer),
            (Role::Operator, operator),
            (Role::Chaos, chaos),
        ] {
            let Some(token) = token else { continue };
            let chars = token.chars().count();
            if chars < TOKEN_CHARS_MIN {
                return Err(TokenConfigError::TooShort { role, chars });
            }
            if chars > TOKEN_CHARS_MAX {
                return Err(TokenConfigError::TooLong { role, chars });
            }
            if let Some(position) = token.chars().position(|c| !c.is_ascii_graphic()) {
                return Err(TokenConfigError::BadCharacter { role, position });
            }
            let d = digest(token.as_bytes());
            if let Some(first) = slots.iter().find(|s| s.digest == d) {
                return Err(TokenConfigError::Reused {
                    first: first.role,
                    second: role,
                });
            }
            slots.push(Slot {
                role,
                digest: d,
                id: token_id(&d),
            });
        }
        debug_assert!(slots.len() <= 3);
        Ok(Tokens { slots })
    }

    /// No token at all: every admin call is refused.
    pub fn none() -> Tokens {
        Tokens { slots: Vec::new() }
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The roles that have a token, for the start-up log.
    pub fn roles(&self) -> Vec<(Role, String)> {
        self.slots.iter().map(|s| (s.role, s.id.clone())).collect()
    }

    /// The caller holding `token`, if it is one of ours. Compares the token's digest with
    /// every configured digest without an early exit.
    pub fn lookup(&self, token: &str) -> Option<Caller> {
        let d = digest(token.as_bytes());
        let mut found: Option<usize> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            let mut diff = 0u8;
            for (a, b) in slot.digest.iter().zip(d.iter()) {
                diff |= a ^ b;
            }
            // `black_box` keeps the compiler from turning the loop into an early-exit
            // comparison; the branch below depends only on the whole digest.
            let equal = std::hint::black_box(diff) == 0;
            if equal {
                found = Some(i);
            }
        }
        let slot = &self.slots[found?];
        Some(Caller {
            role: slot.role,
            token_id: slot.id.clone(),
        })
    }
}

/// An authenticated admin caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The role of the token presented.
    pub role: Role,
    /// First 8 hex digits of the token's SHA-256: names the token in logs and the audit
    /// trail without revealing it.
    pub token_id: String,
}

/// Why an admin call was refused. `IntoResponse` gives 401 (with
/// `WWW-Authenticate: Bearer`) or 403 and a JSON body `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No admin token is configured: the admin API is closed.
    #[error(
        "admin API disabled: no admin token configured; start the server with --admin-token-viewer / --admin-token-operator / --admin-token-chaos (or SOVEREIGN_ADMIN_TOKEN_VIEWER / SOVEREIGN_ADMIN_TOKEN_OPERATOR / SOVEREIGN_ADMIN_TOKEN_CHAOS), each at least {TOKEN_CHARS_MIN} characters"
    )]
    NotConfigured,
    /// The request has no `Authorization` header.
    #[error("missing Authorization header; expected `Authorization: Bearer <token>`")]
    Missing,
    /// The header is not a bearer token (or there is more than one).
    #[error("malformed Authorization header: {0}; expected `Authorization: Bearer <token>`")]
    Malformed(&'static str),
    /// The token is not one of ours.
    #[error("unknown admin token")]
    Unknown,
    /// The token is valid but its role does not grant the one needed.
    #[error("token {token_id} has role {has}; this call needs role {needed}")]
    Forbidden {
        /// the caller's role
        has: Role,
        /// the role the call needs
        needed: Role,
        /// the caller's token id
        token_id: String,
    },
}

impl AuthError {
    /// 401 for everything but [`AuthError::Forbidden`] (403).
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        let mut resp = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sovereign-admin\""),
            );
        }
        resp
    }
}

/// The bearer token in `headers`, or why there is none.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Malformed("more than one Authorization header"));
    }
    let text = value
        .to_str()
        .map_err(|_| AuthError::Malformed("not visible ASCII"))?;
    let (scheme, rest) = text
        .split_once(' ')
        .ok_or(AuthError::Malformed("no scheme"))?;
    // RFC 7235: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed("scheme is not Bearer"));
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(AuthError::Malformed("empty token"));
    }
    Ok(token)
}

/// Authenticate the request and check that its role grants `needed`. Handlers call this
/// first and return the error as their response:
///
/// ```ignore
/// let caller = auth::require(Role::Chaos, &headers, &state.tokens)?;
/// ```
pub fn require(needed: Role, headers: &HeaderMap, tokens: &Tokens) -> Result<Caller, AuthError> {
    if tokens.is_empty() {
        return Err(AuthError::NotConfigured);
    }
    let token = bearer(headers)?;
    let caller = tokens.lookup(token).ok_or(AuthError::Unknown)?;
    if !caller.role.grants(needed) {
        return Err(AuthError::Forbidden {
            has: caller.role,
            needed,
            token_id: caller.token_id,
        });
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "viewer-token-0123456789";
    const O: &str = "operator-token-0123456789";
    const C: &str = "chaos-token-0123456789";

    fn all() -> Tokens {
        Tokens::new(Some(V.into()), Some(O.into()), Some(C.into())).expect("valid tokens")
    }

    fn auth(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        h
    }

    #[test]
    fn roles_grant_viewer_and_only_themselves() {
        // Goal: operator and chaos imply viewer, but not each other; viewer implies nothing.
        use Role::*;
        for r in Role::ALL {
            assert!(r.grants(Viewer));
            assert!(r.grants(r));
        }
        assert!(!Viewer.grants(Operator) && !Viewer.grants(Chaos));
        assert!(!Operator.grants(Chaos) && !Chaos.grants(Operator));
    }

    #[test]
    fn each_token_gets_its_role_and_a_stable_id() {
        // Goal: lookup maps each token to its role; ids are 8 hex digits of the SHA-256.
        let t = all();
        for (tok, role) in [(V, Role::Viewer), (O, Role::Operator), (C, Role::Chaos)] {
            let c = require(Role::Viewer, &auth(tok), &t).expect("viewer access");
            assert_eq!(c.role, role);
            assert_eq!(c.token_id.len(), 8);
            assert!(c.token_id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(!tok.contains(&c.token_id));
        }
        // The id is SHA-256's first 4 bytes: sha256("abc") = ba7816bf… (FIPS 180-2).
        assert_eq!(token_id(&digest(b"abc")), "ba7816bf");
    }

    #[test]
    fn wrong_role_is_403_and_unknown_token_is_401() {
        // Goal: a known token lacking the role gets 403; an unknown one 401 with a
        // WWW-Authenticate challenge.
        let t = all();
        let e = require(Role::Chaos, &auth(O), &t).unwrap_err();
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert!(e.to_string().contains("needs role chaos"));
        let e = require(Role::Operator, &auth(C), &t).unwrap_err();
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        let e = require(Role::Viewer, &auth("not-a-token-at-all-xx"), &t).unwrap_err();
        assert_eq!(e, AuthError::Unknown);
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        // A prefix of a real token is not the token.
        assert_eq!(
            require(Role::Viewer, &auth(&V[..V.len() - 1]), &t),
            Err(AuthError::Unknown)
        );
    }

    #[test]
    fn malformed_headers_are_401() {
        // Goal: missing header, other schemes, empty tokens and duplicates are refused.
        let t = all();
        assert_eq!(
            require(Role::Viewer, &HeaderMap::new(), &t),
            Err(AuthError::Missing)
        );
        for v in ["Basic abc", "Bearer", "Bearer   ", V] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            let e = require(Role::Viewer, &h, &t).unwrap_err();
            assert!(matches!(e, AuthError::Malformed(_)), "{v:?}: {e:?}");
        }
        let mut h = auth(V);
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(matches!(
            require(Role::Viewer, &h, &t),
            Err(AuthError::Malformed(_))
        ));
        // The scheme is case-insensitive.
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("bearer {V}")).unwrap(),
        );
        assert!(require(Role::Viewer, &h, &t).is_ok());
    }

    #[test]
    fn no_tokens_fails_closed_and_says_how_to_configure() {
        // Goal: without configured tokens every call is 401, even with some bearer token.
        let t = Tokens::new(None, None, None).unwrap();
        let e = require(Role::Viewer, &auth(V), &t).unwrap_err();
        assert_eq!(e, AuthError::NotConfigured);
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        let msg = e.to_string();
        assert!(
            msg.contains("--admin-token-viewer") && msg.contains("SOVEREIGN_ADMIN_TOKEN_VIEWER")
        );
    }

    #[test]
    fn bad_tokens_are_refused_at_config_time() {
        // Goal: short, long, non-ASCII and shared tokens fail with the flag and env named.
        let e = Tokens::new(None, Some("short".into()), None).unwrap_err();
        assert_eq!(
            e,
            TokenConfigError::TooShort {
                role: Role::Operator,
                chars: 5
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("--admin-token-operator") && msg.contains("at least 16"));
        assert!(matches!(
            Tokens::new(Some("x".repeat(TOKEN_CHARS_MAX + 1)), None, None),
            Err(TokenConfigError::TooLong { .. })
        ));
        assert!(matches!(
            Tokens::new(Some("has a space in it!!".into()), None, None),
            Err(TokenConfigError::BadCharacter { position: 3, .. })
        ));
        assert_eq!(
            Tokens::new(Some(V.into()), None, Some(V.into())).unwrap_err(),
            TokenConfigError::Reused {
                first: Role::Viewer,
                second: Role::Chaos
            }
        );
        // Exactly the minimum is fine.
        assert!(Tokens::new(Some("a".repeat(TOKEN_CHARS_MIN)), None, None).is_ok());
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        // Goal: logging the Tokens value cannot leak a token.
        let s = format!("{:?}", all());
        for tok in [V, O, C] {
            assert!(!s.contains(tok), "{s}");
        }
        assert!(s.contains("viewer:") && s.contains("chaos:"));
    }

    #[tokio::test]
    async fn error_body_is_json_with_an_error_field() {
        // Goal: the response body is {"error": "..."}.
        let r = AuthError::Forbidden {
            has: Role::Viewer,
            needed: Role::Chaos,
            token_id: "abcd1234".into(),
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
        let ct = r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(ct.starts_with("application/json"), "{ct}");
        use http_body_util::BodyExt;
        let body = r.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            v["error"].as_str(),
            Some("token abcd1234 has role viewer; this call needs role chaos")
        );
    }
}
