//! The HTTP API, in Toxiproxy 2.x's routes and shapes.
//!
//! Map: [`router`] builds the routes over a [`Registry`]; bodies are read as bytes (at
//! most `Limits::max_body`) and parsed here so that every refusal, a malformed body
//! included, is Toxiproxy's `{"error", "status"}`; an optional bearer token guards every
//! route (`auth`).
//!
//! Not here: what the operations do (`state`).

use crate::state::Registry;
use crate::{ApiError, Config, VERSION};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::sync::Arc;

type App = Arc<Registry>;
type Reply = Result<Response, ApiError>;

/// Parses a JSON body (an empty body is `{}`).
fn body(b: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let b = b.map_err(|r| {
        ApiError::new(
            r.status().as_u16(),
            format!("request body: {}", r.body_text()),
        )
    })?;
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&b).map_err(|e| ApiError::bad(format!("malformed JSON body: {e}")))
}

fn ok(status: StatusCode, v: Value) -> Reply {
    Ok((status, Json(v)).into_response())
}

async fn list(State(r): State<App>) -> Reply {
    ok(StatusCode::OK, r.list().await)
}
async fn create(State(r): State<App>, b: Result<Bytes, BytesRejection>) -> Reply {
    ok(StatusCode::CREATED, r.create(&body(b)?).await?)
}
async fn populate(State(r): State<App>, b: Result<Bytes, BytesRejection>) -> Reply {
    ok(StatusCode::CREATED, r.populate(&body(b)?).await?)
}
async fn show(State(r): State<App>, Path(name): Path<String>) -> Reply {
    ok(StatusCode::OK, r.get(&name).await?)
}
async fn update(
    State(r): State<App>,
    Path(name): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Reply {
    ok(StatusCode::OK, r.update(&name, &body(b)?).await?)
}
async fn delete(State(r): State<App>, Path(name): Path<String>) -> Reply {
    r.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
async fn toxics(State(r): State<App>, Path(name): Path<String>) -> Reply {
    ok(StatusCode::OK, r.toxics(&name).await?)
}
async fn add_toxic(
    State(r): State<App>,
    Path(name): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Reply {
    ok(StatusCode::OK, r.add_toxic(&name, &body(b)?).await?)
}
async fn show_toxic(State(r): State<App>, Path((name, toxic)): Path<(String, String)>) -> Reply {
    ok(StatusCode::OK, r.toxic(&name, &toxic).await?)
}
async fn update_toxic(
    State(r): State<App>,
    Path((name, toxic)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Reply {
    ok(
        StatusCode::OK,
        r.update_toxic(&name, &toxic, &body(b)?).await?,
    )
}
async fn remove_toxic(State(r): State<App>, Path((name, toxic)): Path<(String, String)>) -> Reply {
    r.remove_toxic(&name, &toxic).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
async fn reset(State(r): State<App>) -> Reply {
    r.reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
async fn version() -> Reply {
    ok(StatusCode::OK, serde_json::json!({ "version": VERSION }))
}
async fn metrics(State(r): State<App>) -> Reply {
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        r.metrics().await,
    )
        .into_response())
}
async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
async fn not_allowed() -> ApiError {
    ApiError::new(405, "method not allowed")
}

/// Compares without an early exit on the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(expected): State<Arc<str>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if same(given, expected.as_bytes()) {
        next.run(req).await
    } else {
        tracing::warn!(target: "audit", action = "refused", method = %req.method(), path = %req.uri().path(),
            "missing or wrong bearer token");
        ApiError::new(
            401,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
        .into_response()
    }
}

/// The API's routes over `registry`.
pub fn router(registry: Arc<Registry>, config: &Config) -> Router {
    let mut app = Router::new()
        .route("/proxies", get(list).post(create))
        .route("/populate", post(populate))
        .route(
            "/proxies/{name}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{name}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{name}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .route("/reset", post(reset))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .layer(DefaultBodyLimit::max(config.limits.max_body))
        .with_state(registry);
    if let Some(t) = &config.token {
        let expected: Arc<str> = Arc::from(format!("Bearer {t}"));
        app = app.layer(middleware::from_fn_with_state(expected, auth));
    }
    app
}
