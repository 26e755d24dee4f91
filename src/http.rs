//! A local HTTP server on a thread of its own: an axum router served on a single-threaded
//! runtime until it is dropped. The embedded schema registry and the metrics endpoint are both
//! one.

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use axum::Router;

/// A running server; dropping it stops it.
pub struct Server {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `router` on `listen` (port 0: a free one), on a thread named `name`. Binding is
    /// done here, so a taken address is this call's error.
    pub fn start(listen: SocketAddr, name: &str, router: Router) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    // Not a graceful shutdown: that waits for every connection to close, and a
                    // client (a consumer, a scraper) keeps one open for as long as it runs.
                    // Stopping drops the server and, with the runtime, every connection.
                    tokio::select! {
                        _ = axum::serve(listener, router) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Self {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen, when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
