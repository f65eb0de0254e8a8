//! The web dashboard at `/ui/`: server-rendered pages from compile-time
//! checked askama templates, one stylesheet and one small script built into
//! the binary, no Node.js and no client-side application.
//!
//! Every action goes through [`calls`], the same layer the JSON API uses, so
//! the dashboard applies no rule of its own about who may do what. Sessions
//! and CSRF live in [`session`]; what a page shows, in [`view`]; the handlers,
//! in [`pages`]. Every answer carries a strict Content-Security-Policy (no
//! inline script), `frame-ancestors 'none'` and, for pages, `Cache-Control:
//! no-store`: a value shown once is in the answer to the POST that made it
//! and nowhere else (never in a URL, a log or the browser's cache).

mod calls;
mod pages;
pub mod session;
mod view;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::state::AppState;

const STYLESHEET: &str = include_str!("assets/app.css");
const SCRIPT: &str = include_str!("assets/app.js");

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes (mounted by [`crate::app`] when `[ui] enabled`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::token_list))
        .route("/ui/sign-in", get(pages::sign_in_page).post(pages::sign_in))
        .route("/ui/sign-out", post(pages::sign_out))
        .route("/ui/tokens", post(pages::create))
        .route("/ui/tokens/new", get(pages::create_page))
        .route("/ui/tokens/revoke", post(pages::bulk_revoke))
        .route("/ui/tokens/{id}", get(pages::token_detail))
        .route("/ui/tokens/{id}/edit", post(pages::edit))
        .route("/ui/tokens/{id}/regenerate", post(pages::regenerate))
        .route("/ui/tokens/{id}/revoke", post(pages::revoke))
        .route("/ui/tokens/{id}/delete", post(pages::delete))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/assets/app.css", get(stylesheet))
        .route("/ui/assets/app.js", get(script))
        .layer(axum::middleware::map_response(protect))
}

/// Headers on every dashboard answer.
async fn protect(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        // Not `no-referrer`: with it, browsers send `Origin: null` on form
        // posts, and the origin check needs the real one.
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
