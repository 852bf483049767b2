//! Serves an axum router over HTTP/1 the way a server open to a network must: a header-read timeout
//! (which also closes a keep-alive connection left idle), a cap on open connections and on each
//! peer's share of them, and a bounded drain when told to stop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

/// What one server allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers, and how long an idle keep-alive
    /// connection is kept. A client trickling bytes (slowloris) is cut off after it.
    pub header_read_timeout: Duration,
    /// Open connections at most; past it the listener waits, so file descriptors stay free for
    /// the rest of the process (its database connections).
    pub max_connections: usize,
    /// Open connections one peer address may hold; another one from it is closed at once, so a
    /// single client cannot take every slot.
    pub max_per_peer: usize,
    /// How long requests in flight may take to finish once the server is told to stop.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_per_peer: 256,
            drain: Duration::from_secs(10),
        }
    }
}

/// The connections each peer holds.
#[derive(Default)]
struct Peers(Mutex<HashMap<IpAddr, usize>>);

impl Peers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more connection of `peer`, unless it holds `max` already.
    fn admit(self: &Arc<Self>, peer: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut map = self.map();
        let held = map.entry(peer).or_insert(0);
        if *held >= max {
            return None;
        }
        *held += 1;
        Some(PeerSlot {
            peers: Arc::clone(self),
            peer,
        })
    }
}

/// One connection of a peer, given back when dropped.
struct PeerSlot {
    peers: Arc<Peers>,
    peer: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.peers.map();
        if let Some(held) = map.get_mut(&self.peer) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

/// Serves `router` on `listener` until `stop` resolves; then every connection finishes its request
/// in flight (within [`Limits::drain`]) and is closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(router);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let peers = Arc::new(Peers::default());
    let (stopping_tx, stopping) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = tokio::select! {
            _ = &mut stop => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors or a connection reset before accept: keep serving.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Some(peer_slot) = peers.admit(peer.ip(), limits.max_per_peer) else {
            tracing::debug!(peer = %peer.ip(), "connection refused: the peer holds its share");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let _held = (slot, peer_slot);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            // Handlers may read the peer's address (`ConnectInfo`), as behind `axum::serve`.
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    hyper::service::Service::call(&service, req)
                },
            );
            let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let stopped = tokio::select! {
                _ = connection.as_mut() => false,
                changed = stopping.wait_for(|s| *s) => changed.is_ok(),
            };
            if stopped {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        });
    }
    let _ = stopping_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(limits.drain, drain).await;
    connections.abort_all();
    Ok(())
}
