//! Runs kube-memserver on its own until Ctrl-C, for trying a client against
//! it by hand: `cargo run -p kube-memserver --example serve -- <kubeconfig>`
//! writes a kubeconfig for it to the given path (with `require_namespaces`,
//! as a real API server behaves). The scale bench's real-cluster mode, for
//! one, is checked this way on a machine without a cluster:
//! `TOKENOPS_E2E_KUBECONFIG=<kubeconfig> cargo bench -p tokenops-operator --bench scale`.

use kube_memserver::MemServer;

#[tokio::main]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: serve <where to write the kubeconfig>");
    let server = MemServer::builder()
        .require_namespaces(true)
        .record_bodies(false)
        .start()
        .await
        .expect("start kube-memserver");
    server
        .write_kubeconfig(std::path::Path::new(&path))
        .expect("write the kubeconfig");
    println!("kube-memserver: kubeconfig written to {path}; Ctrl-C stops it");
    tokio::signal::ctrl_c().await.expect("wait for Ctrl-C");
}
