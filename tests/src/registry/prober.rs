//! The harness's own HTTP client for a registry: readiness probes and
//! access-log barriers, on a runtime of its own so it works inside or
//! outside a caller's tokio runtime.

use std::time::Duration;

use anyhow::{Context, Result};

/// A one-worker tokio runtime and an HTTP client trusting the registry's CA,
/// for the harness's own requests (readiness probes and log barriers). Works
/// whether or not the caller is inside a runtime: requests are spawned onto
/// this runtime and awaited through a channel, never `block_on`.
pub(super) struct Prober {
    rt: Option<tokio::runtime::Runtime>,
    client: reqwest::Client,
}

impl Prober {
    pub(super) fn new(ca_pem: Option<&str>) -> Result<Prober> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("registry-probe")
            .enable_all()
            .build()
            .context("building the probe runtime")?;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .no_proxy();
        if let Some(ca) = ca_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?);
        }
        // Build inside the runtime so anything the client spawns lands there.
        let _guard = rt.enter();
        let client = builder.build().context("building the probe client")?;
        drop(_guard);
        Ok(Prober {
            rt: Some(rt),
            client,
        })
    }

    /// GET `url`; the status code, or the error text.
    pub(super) fn get(&self, url: &str) -> std::result::Result<u16, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let client = self.client.clone();
        let url = url.to_owned();
        self.rt.as_ref().unwrap().spawn(async move {
            let r = client.get(&url).send().await;
            let _ = tx.send(r.map(|r| r.status().as_u16()).map_err(|e| format!("{e:#}")));
        });
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| Err("probe timed out".to_owned()))
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime's context panics; this does not.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
