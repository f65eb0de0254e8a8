//! Request extractors that turn every client mistake into a problem naming the
//! field and the rule: JSON bodies (content type, size, syntax, types, unknown
//! and missing fields) and query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tokenops_types::codes;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body deserialised with the offending field's path on error.
pub struct ApiJson<T>(pub T);

/// Replaces every double-quoted part of a serde message by `"…"`: serde quotes
/// the values it rejects, and a rejected value may be a secret.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for c in msg.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// Serde reports unknown and missing fields by name in backticks.
fn backticked(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

fn join_path(path: &str, name: &str) -> String {
    if path == name || path.ends_with(&format!(".{name}")) {
        path.to_string()
    } else if path.is_empty() || path == "." {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Maps a deserialisation failure to a problem.
pub fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    use serde_json::error::Category;
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::malformed_json(format!("request body is not valid JSON: {inner}"))
        }
        Category::Data => {
            let msg = inner.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            if msg.starts_with("unknown field") {
                // The unknown name is never quoted back (it may be a value
                // pasted in the wrong place); the expected names are ours.
                let name = backticked(&msg).unwrap_or("?");
                let parent = path
                    .strip_suffix(name)
                    .map(|p| p.trim_end_matches('.'))
                    .unwrap_or(&path);
                let field = if parent.is_empty() || parent == "." {
                    "body".to_string()
                } else {
                    parent.to_string()
                };
                let expected = msg
                    .split_once("expected ")
                    .map(|(_, e)| e.replace('`', ""))
                    .unwrap_or_else(|| "no fields here".to_string());
                ApiError::field(
                    codes::UNKNOWN_FIELD,
                    field.clone(),
                    format!("{field} has a field this API does not know; expected {expected}"),
                )
            } else if msg.starts_with("missing field") {
                let name = backticked(&msg).unwrap_or("?");
                ApiError::field(
                    codes::REQUIRED,
                    join_path(&path, name),
                    format!("{name} is required"),
                )
            } else {
                let field = if path.is_empty() || path == "." {
                    "body".to_string()
                } else {
                    path
                };
                ApiError::field(
                    codes::INVALID_FIELD,
                    field.clone(),
                    format!("{field}: {}", redact_quoted(&msg)),
                )
            }
        }
    }
}

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    // Compared without allocating: this runs on every JSON request.
    mime.eq_ignore_ascii_case("application/json")
        || (mime.len() > "application/+json".len()
            && mime[.."application/".len()].eq_ignore_ascii_case("application/")
            && mime[mime.len() - "+json".len()..].eq_ignore_ascii_case("+json"))
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::unsupported_media_type());
        }
        let limit = state.policy.max_body_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(limit)
            } else {
                ApiError::malformed_json("could not read the request body")
            }
        })?;
        // The common case pays only for plain parsing; a failing body is parsed
        // again with path tracking to name the field at fault.
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(ApiJson(value)),
            Err(_) => {
                let de = &mut serde_json::Deserializer::from_slice(&bytes);
                match serde_path_to_error::deserialize::<_, T>(de) {
                    Ok(value) => Ok(ApiJson(value)),
                    Err(e) => Err(json_error(e)),
                }
            }
        }
    }
}

/// An optional JSON body: absent when the request has no body and no
/// content type (e.g. `POST …/revoke` without options).
impl<T: DeserializeOwned> axum::extract::OptionalFromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|l| l.as_bytes() == b"0");
        if empty || req.headers().get(header::CONTENT_TYPE).is_none() {
            return Ok(None);
        }
        <ApiJson<T> as FromRequest<AppState>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// A query string deserialised into `T`, with field-named errors.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                let msg = err.into_inner().to_string();
                let field = backticked(&msg).map(str::to_string).unwrap_or(path);
                ApiError::field(
                    codes::INVALID_FIELD,
                    field,
                    format!("query parameter: {}", redact_quoted(&msg)),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised_without_regard_to_case() {
        let ct = |v: &'static str| Some(header::HeaderValue::from_static(v));
        assert!(is_json(ct("application/json").as_ref()));
        assert!(is_json(ct("Application/JSON; charset=utf-8").as_ref()));
        assert!(is_json(ct("application/merge-patch+json").as_ref()));
        assert!(!is_json(ct("text/plain").as_ref()));
        assert!(!is_json(ct("application/+json").as_ref()));
        assert!(!is_json(ct("application/jsonx").as_ref()));
        let opaque = header::HeaderValue::from_bytes(b"application/json\xe9").unwrap();
        assert!(!is_json(Some(&opaque)));
        assert!(!is_json(None));
    }

    #[test]
    fn quoted_values_never_reach_the_message() {
        let m = redact_quoted("invalid type: string \"tko_secretvalue\", expected u64");
        assert!(!m.contains("secretvalue"));
        assert!(m.contains("expected u64"));
    }
}
