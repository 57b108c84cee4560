//! A plain TCP relay: listens on a loopback address of the test's choosing and
//! passes bytes to an upstream `ip:port` untouched (TLS included), counting
//! the connections it accepted. Lets a test reach a registry under an address
//! its certificate does not name (127.0.0.2 for a certificate made for
//! 127.0.0.1), or count how many connections a client opened.
//!
//! Never binds or forwards to anything but loopback; runs on its own thread
//! and runtime, so it works from plain and async tests alike, and stops when
//! dropped.

use std::net::{IpAddr, SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A running relay. Stops when dropped.
pub struct Relay {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Listen on `bind` (a loopback address, any free port) and relay every
    /// connection to `upstream` (`127.0.0.1:PORT`).
    pub fn start(bind: IpAddr, upstream: &str) -> Result<Relay> {
        let upstream: SocketAddr = upstream
            .parse()
            .with_context(|| format!("upstream {upstream:?} must be ip:port"))?;
        if !bind.is_loopback() || !upstream.ip().is_loopback() {
            bail!("the relay stays on loopback: {bind} -> {upstream}");
        }
        let listener =
            StdListener::bind((bind, 0)).with_context(|| format!("binding the relay on {bind}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("atp-tcp-relay".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("relay runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("relay listener");
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept_loop(listener, upstream, count) => {}
                    }
                });
            })
            .context("spawning the relay thread")?;
        Ok(Relay {
            addr,
            accepted,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `IP:PORT` the relay listens on.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, count: Arc<AtomicUsize>) {
    while let Ok((mut down, _)) = listener.accept().await {
        count.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if let Ok(mut up) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            }
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
