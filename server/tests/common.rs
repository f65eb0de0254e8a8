//! A thin raw-HTTP helper for the server's tests: every assertion sees the real
//! status, headers and body the server sent.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or("")
    }
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// Asserts a problem+json answer with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.text
        );
        assert_eq!(self.code(), code, "body: {}", self.text);
        self
    }
}

impl Api {
    pub fn new(url: String) -> Api {
        Api {
            http: reqwest::Client::new(),
            url,
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::reply(req).await
    }

    pub async fn reply(req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("request reaches the server");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.raw(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.raw(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.raw(Method::PATCH, path, Some(token), Some(body)).await
    }

    /// Creates a token and returns `(id, secret)`.
    pub async fn create(&self, token: &str, body: Value) -> (String, String) {
        let r = self.post("/v1/tokens", token, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "create failed: {}", r.text);
        (
            r.body["token"]["id"].as_str().unwrap().to_string(),
            r.body["secret"].as_str().unwrap().to_string(),
        )
    }

    /// Creates a token with a role and a lifetime of 720h.
    pub async fn create_role(&self, token: &str, name: &str, role: &str) -> (String, String) {
        self.create(
            token,
            json!({"name": name, "role": role, "lifetime": "720h"}),
        )
        .await
    }

    /// The whole answer of `POST /v1/verify` for a value.
    pub async fn verify_reply(&self, value: &str) -> Reply {
        self.raw(
            Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": value})),
        )
        .await
    }

    /// The verification code of a value (`VALID`, `REVOKED`, …).
    pub async fn verify(&self, value: &str) -> String {
        let r = self.verify_reply(value).await;
        r.body["code"]
            .as_str()
            .unwrap_or_else(|| panic!("verify answered {}", r.text))
            .to_string()
    }
}

/// Polls `check` until it returns true, failing after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
