//! The probe and metrics endpoints, over real HTTP.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokenops_operator::http::{Health, router};
use tokenops_operator::metrics::Metrics;

#[tokio::test]
async fn probes_report_liveness_and_readiness_and_metrics_are_served() {
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(metrics.clone(), health.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The tokenops client speaks the same probe conventions.
    let client = tokenops_client::Client::builder(format!("http://{addr}"))
        .build()
        .unwrap();
    client.health().await.unwrap();
    assert!(
        !client.ready().await.unwrap(),
        "ready before the operator started"
    );
    health.ready.store(true, Ordering::Relaxed);
    assert!(client.ready().await.unwrap());

    metrics.reconciled("ApiToken");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("tokenops_operator_reconciles_total{kind=\"ApiToken\"} 1"),
        "{body}"
    );
}
