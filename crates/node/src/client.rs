//! The emulator's own way to the API server and to its pods: a kube client from the kubeconfig,
//! and the one-off HTTP GET its probes make. (It is a dev tool beside the platform, not part of
//! it: it shares no code with the kube platform but this crate's contracts.)

use std::time::Duration;

use super::NodeError;

/// A client from the kubeconfig (KUBECONFIG, ~/.kube/config, `context`) or the in-cluster config.
pub async fn kube_client(context: Option<&str>) -> Result<kube::Client, NodeError> {
    // Two rustls providers may be linked into the binary (ring for kube, aws-lc-rs for others),
    // so rustls cannot choose by itself: the emulator picks ring, as kube is built with it.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let config = match context {
        Some(ctx) => {
            let opts = kube::config::KubeConfigOptions { context: Some(ctx.to_owned()), ..Default::default() };
            kube::Config::from_kubeconfig(&opts)
                .await
                .map_err(|e| NodeError::Config(format!("kubeconfig context {ctx}: {e}")))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            NodeError::Config(format!("no Kubernetes configuration (set KUBECONFIG or --context): {e}"))
        })?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// GET `url` within `timeout`: the status, or `None` when nothing answered (a probe's question).
pub async fn get_status(url: &str, timeout: Duration) -> Option<u16> {
    let http = reqwest::Client::builder().timeout(timeout).no_proxy().build().ok()?;
    http.get(url).send().await.ok().map(|r| r.status().as_u16())
}
