//! Starting and stopping a broker: recover the data directory, listen for Kafka
//! clients and HTTP probes, and shut down gracefully.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::cluster::{Cluster, OFFSETS_TOPIC, TRANSACTIONS_TOPIC};
use crate::config::BrokerConfig;
use crate::coord::group::GroupLimits;
use crate::coord::producer_ids::ProducerIdAllocator;
use crate::coord::transactions::TransactionCoordinator;
use crate::coord::GroupCoordinator;
use crate::error::StartError;
use crate::metrics::Metrics;
use crate::net::connection;
use crate::net::connection_limits::ConnectionLimits;
use crate::net::listener::{self, Listener};
use crate::net::log_limiter::{connection_line, LogLimiter};
use crate::security::{tls, Security};

/// How long shutdown waits for in-flight requests before closing the logs anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters about the broker's connections (Prometheus metrics build on these later).
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Connections currently open.
    pub connections_open: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections closed because a frame was malformed, too large, or named an API
    /// or version strom does not serve.
    pub malformed_frames: AtomicU64,
    /// Connections closed at once because `max.connections` or
    /// `max.connections.per.ip` was reached.
    pub connections_refused: AtomicU64,
    /// Requests that waited for room in `queued.max.request.bytes` before being read.
    pub requests_waited_for_budget: AtomicU64,
    /// Fetch requests waiting for data now (long polls).
    pub fetches_waiting: AtomicU64,
}

/// What every connection shares.
pub(crate) struct Shared {
    pub cluster: Arc<Cluster>,
    pub coordinator: Arc<GroupCoordinator>,
    pub transactions: Arc<TransactionCoordinator>,
    pub producer_ids: Arc<ProducerIdAllocator>,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<BrokerStats>,
    /// Credentials, ACLs and SASL settings.
    pub security: Arc<Security>,
    /// Every bound listener, in configuration order.
    pub listeners: Vec<Arc<Listener>>,
    /// `max.connections` and `max.connections.per.ip`, with what is open.
    pub connections: Arc<ConnectionLimits>,
    /// Bytes of requests read and not yet answered (`queued.max.request.bytes`).
    pub request_budget: Arc<Semaphore>,
    /// Rate limit of connection log lines.
    pub connection_log: LogLimiter,
    /// Turns true when the broker shuts down; waiting requests answer at once.
    pub shutdown: watch::Receiver<bool>,
}

/// The broker. [`Broker::start`] is the whole API: it returns a running broker's handle.
pub struct Broker;

impl Broker {
    /// Recovers the data directory, binds the listeners and starts serving. Returns
    /// once clients can connect.
    pub async fn start(config: BrokerConfig) -> Result<BrokerHandle, StartError> {
        if config.queued_request_bytes_max < config.request_bytes_max {
            return Err(StartError::Config(format!(
                "queued.max.request.bytes ({}) must be at least socket.request.max.bytes ({}): the largest request could never be read",
                config.queued_request_bytes_max, config.request_bytes_max
            )));
        }
        if config.request_bytes_max > i32::MAX as usize {
            return Err(StartError::Config(format!(
                "socket.request.max.bytes ({}) must fit a Kafka frame size ({})",
                config.request_bytes_max,
                i32::MAX
            )));
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let ready: Arc<OnceLock<Arc<Shared>>> = Arc::new(OnceLock::new());
        let (http_addr, http_task) = match config.http_addr {
            Some(addr) => {
                let (bound, task) =
                    start_http(addr, Arc::clone(&ready), shutdown_rx.clone()).await?;
                (Some(bound), Some(task))
            }
            None => (None, None),
        };
        let mut listeners = Vec::new();
        for listener_config in config.effective_listeners() {
            if listeners
                .iter()
                .any(|(_, l): &(TcpListener, Arc<Listener>)| l.name == listener_config.name)
            {
                return Err(StartError::Config(format!(
                    "two listeners are called `{}`",
                    listener_config.name
                )));
            }
            listeners.push(listener::bind(&listener_config).await?);
        }
        let tls = match &config.security.tls {
            Some(tls_config) => Some(tls::acceptor(tls_config)?),
            None if listeners.iter().any(|(_, l)| l.protocol.uses_tls()) => {
                return Err(StartError::Config(
                    "SSL and SASL_SSL listeners need a [tls] section".into(),
                ))
            }
            None => None,
        };
        let security_config = config.security.clone();
        let cluster = tokio::task::spawn_blocking(move || Cluster::open(config))
            .await
            .map_err(|e| StartError::Config(format!("startup task failed: {e}")))??;
        let cluster = Arc::new(cluster);
        let offsets_log = cluster.internal_log(OFFSETS_TOPIC)?;
        let limits = GroupLimits {
            initial_rebalance_delay: cluster.config.group_initial_rebalance_delay,
            offsets_retention: cluster.config.offsets_retention,
            min_session_timeout: cluster.config.group_min_session_timeout,
            max_session_timeout: cluster.config.group_max_session_timeout,
            size_max: cluster.config.group_size_max,
            consumer_session_timeout: cluster.config.group_consumer_session_timeout,
            consumer_heartbeat_interval: cluster.config.group_consumer_heartbeat_interval,
        };
        let coordinator = GroupCoordinator::open(offsets_log, limits)?;
        let ticker = coordinator.spawn_ticker();
        let producer_ids = Arc::new(
            ProducerIdAllocator::open(cluster.data_dir())
                .map_err(|e| StartError::Config(format!("producer id file: {e}")))?,
        );
        let transactions = TransactionCoordinator::open(
            cluster.internal_log(TRANSACTIONS_TOPIC)?,
            Arc::clone(&cluster),
            Arc::clone(&coordinator),
            Arc::clone(&producer_ids),
        )?;
        let txn_ticker = transactions.spawn_ticker();
        cluster.spawn_snapshots();
        cluster.spawn_cleaner();
        let metrics = Arc::new(Metrics::new());
        let security = {
            let (cluster, metrics) = (Arc::clone(&cluster), Arc::clone(&metrics));
            tokio::task::spawn_blocking(move || Security::open(cluster, &security_config, metrics))
                .await
                .map_err(|e| StartError::Config(format!("startup task failed: {e}")))??
        };
        let connections = ConnectionLimits::new(
            cluster.config.connections_max,
            cluster.config.connections_per_ip_max,
        );
        let request_budget = Arc::new(Semaphore::new(
            cluster
                .config
                .queued_request_bytes_max
                .min(Semaphore::MAX_PERMITS),
        ));
        let shared = Arc::new(Shared {
            cluster,
            coordinator,
            transactions,
            producer_ids,
            metrics,
            stats: Arc::new(BrokerStats::default()),
            security: Arc::new(security),
            listeners: listeners.iter().map(|(_, l)| Arc::clone(l)).collect(),
            connections,
            request_budget,
            connection_log: LogLimiter::new(),
            shutdown: shutdown_rx.clone(),
        });
        shared.metrics.observe_flushes();
        let mut bound = Vec::new();
        let mut accept_tasks = Vec::new();
        for (socket, listener) in listeners {
            tracing::info!(listener = %listener.name, protocol = ?listener.protocol, addr = %listener.bound, "listening");
            bound.push((listener.name.clone(), listener.bound));
            let tls = tls.clone().filter(|_| listener.protocol.uses_tls());
            accept_tasks.push(tokio::spawn(accept_loop(
                socket,
                listener,
                tls,
                Arc::clone(&shared),
                shutdown_rx.clone(),
            )));
        }
        let _ = ready.set(Arc::clone(&shared));
        tracing::info!(kafka_addr = %bound[0].1, http_addr = ?http_addr, "strom is serving Kafka clients");
        Ok(BrokerHandle {
            listeners: bound,
            http_addr,
            shared,
            shutdown: shutdown_tx,
            accept_tasks,
            http_task,
            tickers: [ticker, txn_ticker],
        })
    }
}

/// A running broker.
pub struct BrokerHandle {
    /// Name and bound address of each listener, in configuration order.
    listeners: Vec<(String, SocketAddr)>,
    http_addr: Option<SocketAddr>,
    pub(crate) shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
    http_task: Option<JoinHandle<()>>,
    tickers: [std::thread::JoinHandle<()>; 2],
}

impl BrokerHandle {
    /// The address the first Kafka listener is bound to.
    pub fn kafka_addr(&self) -> SocketAddr {
        self.listeners[0].1
    }

    /// The address the listener called `name` is bound to.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
    }

    /// Every listener's name and bound address.
    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// The address of the HTTP endpoint, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Connection counters.
    pub fn stats(&self) -> &BrokerStats {
        &self.shared.stats
    }

    /// Stops accepting connections, lets in-flight requests finish (up to ten
    /// seconds), syncs and closes every log and writes the clean-shutdown marker.
    pub async fn shutdown(self) -> Result<(), strom_log::LogError> {
        let _ = self.shutdown.send(true);
        self.shared.coordinator.stop();
        self.shared.transactions.stop();
        for task in self.accept_tasks {
            let _ = task.await;
        }
        if let Some(http) = self.http_task {
            let _ = http.await;
        }
        let suppressed = self.shared.connection_log.take_suppressed();
        if suppressed > 0 {
            tracing::warn!(
                suppressed,
                "connection log lines suppressed since the last one written"
            );
        }
        let cluster = Arc::clone(&self.shared.cluster);
        let tickers = self.tickers;
        let closed = tokio::task::spawn_blocking(move || {
            for ticker in tickers {
                let _ = ticker.join();
            }
            cluster.close()
        })
        .await;
        tracing::info!("strom stopped");
        closed.unwrap_or_else(|e| {
            Err(strom_log::LogError::Config(format!(
                "close task failed: {e}"
            )))
        })
    }
}

async fn accept_loop(
    socket: TcpListener,
    listener: Arc<Listener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let permit = match shared.connections.admit(peer.ip()) {
                    Ok(permit) => permit,
                    Err(refusal) => {
                        shared
                            .stats
                            .connections_refused
                            .fetch_add(1, Ordering::Relaxed);
                        connection_line!(shared.connection_log, warn, %peer, listener = %listener.name, reason = %refusal, "connection refused and closed");
                        drop(stream);
                        continue;
                    }
                };
                tracing::debug!(%peer, "connection accepted");
                let stats = Arc::clone(&shared.stats);
                stats.connections_total.fetch_add(1, Ordering::Relaxed);
                stats.connections_open.fetch_add(1, Ordering::Relaxed);
                let serve = connection::start(
                    stream,
                    peer,
                    Arc::clone(&listener),
                    tls.clone(),
                    Arc::clone(&shared),
                    shutdown.clone(),
                );
                connections.spawn(async move {
                    serve.await;
                    stats.connections_open.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            Err(error) => {
                // Usually out of file descriptors; back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while connections.try_join_next().is_some() {}
    }
    drop(socket);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "in-flight requests did not finish in time; closing their connections"
        );
        connections.shutdown().await;
    }
}

/// Serves `GET /healthz` (the process is up) and `GET /readyz` (logs recovered and
/// the Kafka listener accepting).
async fn start_http(
    addr: SocketAddr,
    ready: Arc<OnceLock<Arc<Shared>>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    let metrics_ready = Arc::clone(&ready);
    let cleaner_ready = Arc::clone(&ready);
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                if ready.get().is_some() {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "recovering\n")
                }
            }),
        )
        .route(
            "/metrics",
            get(move || async move {
                match metrics_ready.get() {
                    Some(shared) => (
                        StatusCode::OK,
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        shared.metrics.render(shared),
                    ),
                    None => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("content-type", "text/plain; charset=utf-8")],
                        "recovering\n".to_string(),
                    ),
                }
            }),
        )
        .route(
            "/v1/topics/{topic}/cleaner",
            get(move |Path(topic): Path<String>| async move {
                let json = [("content-type", "application/json")];
                let Some(shared) = cleaner_ready.get() else {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        json,
                        "{\"error\":\"recovering\"}".to_string(),
                    );
                };
                match crate::cleaner_status::topic_cleaner_status(&shared.cluster, &topic) {
                    Some(status) => (
                        StatusCode::OK,
                        json,
                        serde_json::to_string(&status).unwrap_or_default(),
                    ),
                    None => (
                        StatusCode::NOT_FOUND,
                        json,
                        "{\"error\":\"unknown topic\"}".to_string(),
                    ),
                }
            }),
        );
    let task = tokio::spawn(async move {
        let stop = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(%error, "HTTP server failed");
        }
    });
    Ok((bound, task))
}
