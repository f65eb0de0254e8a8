//! The retry policy against a real server: its rate limiter, a proxy that
//! fails or loses responses, and a server that is not up yet.

mod support;

use std::time::Duration;

use support::{Action, Proxy, fast_retries};
use tokenops_client::secrecy::ExposeSecret;
use tokenops_client::{Error, RetryPolicy, TokenStatus, VerifyCode};
use tokenops_testkit::{Backend, TestServer};

const RATE_LIMITED_POLICY: &str = "[rate_limit]\nrequests_per_second = 1\nburst = 1\n";

#[tokio::test]
async fn rate_limits_are_waited_out_using_retry_after() {
    let server = TestServer::with_config(Backend::Sqlite, RATE_LIMITED_POLICY)
        .await
        .unwrap();
    let impatient = support::client(&server.url(), &server.owner_token(), RetryPolicy::none());
    let patient = support::client(&server.url(), &server.owner_token(), fast_retries(5));

    // Without retries the second call in a row is refused, with a hint.
    let mut refused = None;
    for _ in 0..3 {
        if let Err(e) = impatient.whoami().await {
            refused = Some(e);
            break;
        }
    }
    match refused.expect("the limiter refuses a burst") {
        Error::RateLimited { retry_after, code } => {
            assert_eq!(code, tokenops_client::codes::RATE_LIMITED);
            let ra = retry_after.expect("429 carries Retry-After");
            assert!(ra <= Duration::from_secs(2), "{ra:?}");
        }
        other => panic!("{other:?}"),
    }

    // With retries, calls in a row all succeed: the client waits as told.
    let started = tokio::time::Instant::now();
    for _ in 0..3 {
        patient.whoami().await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was honoured"
    );
}

#[tokio::test]
async fn verify_rate_limits_are_retried_too() {
    let server = TestServer::with_config(Backend::Sqlite, RATE_LIMITED_POLICY)
        .await
        .unwrap();
    let owner = support::client(&server.url(), &server.owner_token(), fast_retries(5));
    let created = owner
        .create_token("limited")
        .role("read-only")
        .lifetime(Duration::from_secs(3600))
        .await
        .unwrap();

    let impatient = tokenops_client::Client::builder(server.url())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let mut limited = None;
    for _ in 0..3 {
        match impatient.verify(created.secret.clone()).await {
            Ok(answer) => assert!(answer.valid, "{answer:?}"),
            Err(e) => {
                limited = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(
            limited,
            Some(Error::RateLimited {
                retry_after: Some(_),
                ..
            })
        ),
        "{limited:?}"
    );

    let patient = tokenops_client::Client::builder(server.url())
        .retry_policy(fast_retries(5))
        .build()
        .unwrap();
    for _ in 0..2 {
        let answer = patient.verify(created.secret.clone()).await.unwrap();
        assert_eq!(answer.code, VerifyCode::Valid);
    }
}

#[tokio::test]
async fn gateway_errors_are_retried() {
    let server = TestServer::sqlite().await;
    let proxy = Proxy::start(
        &server.url(),
        vec![Action::Fail(502), Action::Fail(503), Action::Fail(504)],
    )
    .await;
    let client = support::client(&proxy.url(), &server.owner_token(), fast_retries(3));
    let me = client.whoami().await.unwrap();
    assert!(me.id.starts_with("tok_"));
    assert_eq!(proxy.count("GET", "/v1/whoami"), 4);
}

#[tokio::test]
async fn gateway_errors_surface_once_retries_are_used_up() {
    let server = TestServer::sqlite().await;
    let proxy = Proxy::start(&server.url(), vec![Action::Fail(503); 3]).await;
    let client = support::client(&proxy.url(), &server.owner_token(), fast_retries(1));
    let err = client.list_tokens().await.unwrap_err();
    assert!(matches!(&err, Error::Server { status: 503, .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(proxy.seen().len(), 2);
}

#[tokio::test]
async fn internal_errors_and_client_errors_are_not_retried() {
    let server = TestServer::sqlite().await;
    let proxy = Proxy::start(&server.url(), vec![Action::Fail(500)]).await;
    let client = support::client(&proxy.url(), &server.owner_token(), fast_retries(3));
    let err = client.whoami().await.unwrap_err();
    assert!(matches!(err, Error::Server { status: 500, .. }), "{err:?}");
    let err = client.get_token("tok_doesnotexist").await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(proxy.seen().len(), 2, "one attempt each");
}

#[tokio::test]
async fn a_create_whose_response_is_lost_creates_exactly_one_token() {
    let server = TestServer::sqlite().await;
    let proxy = Proxy::start(&server.url(), vec![Action::DropResponse]).await;
    let client = support::client(&proxy.url(), &server.owner_token(), fast_retries(3));

    let created = client
        .create_token("once")
        .role("read-only")
        .lifetime(Duration::from_secs(3600))
        .await
        .unwrap();

    let posts: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "the lost attempt and its retry: {posts:?}");
    assert_eq!(posts[0].action, Action::DropResponse);
    assert!(posts[0].idempotency_key.is_some());
    assert_eq!(
        posts[0].idempotency_key, posts[1].idempotency_key,
        "one key per logical call"
    );

    let direct = support::client(&server.url(), &server.owner_token(), RetryPolicy::none());
    let named = direct.list_tokens().name("once").all().await.unwrap();
    assert_eq!(named.len(), 1, "exactly one token: {named:?}");
    assert_eq!(named[0].id, created.token.id);
    let answer = direct.verify(created.secret.clone()).await.unwrap();
    assert!(
        answer.valid,
        "the value the caller finally got works: {answer:?}"
    );
}

#[tokio::test]
async fn a_regenerate_whose_response_is_lost_regenerates_once() {
    let server = TestServer::sqlite().await;
    let direct = support::client(&server.url(), &server.owner_token(), RetryPolicy::none());
    let created = direct
        .create_token("regen")
        .role("read-only")
        .lifetime(Duration::from_secs(3600))
        .await
        .unwrap();

    let proxy = Proxy::start(&server.url(), vec![Action::DropResponse]).await;
    let client = support::client(&proxy.url(), &server.owner_token(), fast_retries(3));
    let renewed = client.regenerate_token(&created.token.id).await.unwrap();

    assert_eq!(proxy.seen().len(), 2);
    assert_eq!(renewed.token.id, created.token.id);
    assert_eq!(renewed.token.generation, 1);
    assert_eq!(
        direct
            .get_token(&created.token.id)
            .await
            .unwrap()
            .generation,
        1
    );
    assert!(direct.verify(renewed.secret.clone()).await.unwrap().valid);
    assert_ne!(
        renewed.secret.expose_secret(),
        created.secret.expose_secret()
    );
}

#[tokio::test]
async fn a_delete_whose_response_is_lost_still_succeeds() {
    let server = TestServer::sqlite().await;
    let direct = support::client(&server.url(), &server.owner_token(), RetryPolicy::none());
    let created = direct
        .create_token("del")
        .role("read-only")
        .lifetime(Duration::from_secs(3600))
        .await
        .unwrap();

    let proxy = Proxy::start(&server.url(), vec![Action::DropResponse]).await;
    let client = support::client(&proxy.url(), &server.owner_token(), fast_retries(3));
    client.delete_token(&created.token.id).await.unwrap();
    assert_eq!(
        proxy.seen().len(),
        2,
        "the retry saw 404 and took it as done"
    );
    assert!(
        direct
            .get_token(&created.token.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn a_revoke_whose_response_is_lost_still_succeeds() {
    let server = TestServer::sqlite().await;
    let direct = support::client(&server.url(), &server.owner_token(), RetryPolicy::none());
    let created = direct
        .create_token("rev")
        .role("read-only")
        .lifetime(Duration::from_secs(3600))
        .await
        .unwrap();

    let proxy = Proxy::start(&server.url(), vec![Action::DropResponse]).await;
    let client = support::client(&proxy.url(), &server.owner_token(), fast_retries(3));
    let token = client.revoke_token(&created.token.id).await.unwrap();
    assert_eq!(token.status, TokenStatus::Revoked);
    assert_eq!(proxy.seen().len(), 2);
}

#[tokio::test]
async fn connection_refused_is_retried_until_the_server_is_up() {
    let server = TestServer::sqlite().await;
    // A port nobody listens on (yet).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");

    let once = support::client(&url, &server.owner_token(), RetryPolicy::none());
    match once.whoami().await.unwrap_err() {
        Error::Transport(e) => assert!(e.is_connect(), "{e}"),
        other => panic!("{other:?}"),
    }

    let (_guard, mut retries) = support::retry_events::watch();
    let client = support::client(&url, &server.owner_token(), fast_retries(50));
    let call = tokio::spawn(async move { client.whoami().await });
    // Bring the "server" up only once the client has been refused at least once.
    retries.recv().await.expect("the client retries");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let proxy = Proxy::start_on(listener, &server.url(), vec![]);
    let me = call.await.unwrap().unwrap();
    assert!(me.id.starts_with("tok_"));
    assert_eq!(proxy.count("GET", "/v1/whoami"), 1);
}

#[tokio::test]
async fn an_update_and_a_bulk_revoke_whose_responses_are_lost_are_repeated_safely() {
    let server = TestServer::sqlite().await;
    let direct = support::client(&server.url(), &server.owner_token(), RetryPolicy::none());
    let created = direct
        .create_token("patch-me")
        .role("read-only")
        .lifetime(Duration::from_secs(3600))
        .label("batch", "b1")
        .await
        .unwrap();

    let proxy = Proxy::start(
        &server.url(),
        vec![Action::DropResponse, Action::Forward, Action::DropResponse],
    )
    .await;
    let client = support::client(&proxy.url(), &server.owner_token(), fast_retries(3));
    let updated = client
        .update_token(&created.token.id)
        .name("patched")
        .await
        .unwrap();
    assert_eq!(updated.name, "patched");

    let n = client
        .revoke_tokens(tokenops_client::BulkRevoke::selector("batch=b1"))
        .await
        .unwrap()
        .revoked;
    assert_eq!(
        n, 0,
        "the lost attempt revoked it; the retry found nothing active"
    );
    assert_eq!(
        direct.get_token(&created.token.id).await.unwrap().status,
        TokenStatus::Revoked
    );
    assert_eq!(proxy.seen().len(), 4);
}

#[tokio::test]
async fn the_observer_sees_every_attempt_with_its_operation_and_status() {
    let server = TestServer::sqlite().await;
    let proxy = Proxy::start(&server.url(), vec![Action::Fail(503)]).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = tokenops_client::Client::builder(proxy.url())
        .token(tokenops_client::secrecy::SecretString::from(
            server.owner_token(),
        ))
        .retry_policy(fast_retries(2))
        .observer(move |a| {
            log.lock().unwrap().push((
                a.operation,
                a.method.as_str().to_string(),
                a.status,
                a.retry,
                a.elapsed,
            ))
        })
        .build()
        .unwrap();
    // The first attempt meets the proxy's 503, the retry the server.
    client.whoami().await.unwrap();
    let missing = client.get_token("tok_doesnotexist0000").await.unwrap_err();
    assert!(missing.is_not_found());
    let seen = seen.lock().unwrap().clone();
    let summary: Vec<_> = seen
        .iter()
        .map(|(op, method, status, retry, _)| (*op, method.as_str(), *status, *retry))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("whoami", "GET", Some(503), 0),
            ("whoami", "GET", Some(200), 1),
            ("get_token", "GET", Some(404), 0),
        ]
    );
    assert!(seen.iter().all(|(.., elapsed)| *elapsed > Duration::ZERO));
}
