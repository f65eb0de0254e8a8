//! Build script: with `TOKENOPS_E2E_KUBECONFIG` set (the e2e suite against a
//! real cluster), compiles the tests with `cfg(e2e_real_cluster)` so that the
//! ones that need kube-memserver show as ignored, with the reason, instead of
//! passing without running.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(e2e_real_cluster)");
    println!("cargo::rerun-if-env-changed=TOKENOPS_E2E_KUBECONFIG");
    if std::env::var_os("TOKENOPS_E2E_KUBECONFIG").is_some_and(|p| !p.is_empty()) {
        println!("cargo::rustc-cfg=e2e_real_cluster");
    }
}
