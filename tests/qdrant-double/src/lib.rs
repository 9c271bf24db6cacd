//! An in-memory Qdrant gRPC server for tests.
//!
//! [`QdrantDouble::start`] serves qdrant-client's own generated tonic services (`Collections`,
//! `Points` and the `Qdrant` health check) on `127.0.0.1:<free port>`, from its own thread and
//! tokio runtime, so it works from a plain `#[test]` as well as from `#[tokio::test]`. Point a
//! `qdrant_client::Qdrant` at [`QdrantDouble::url`]; drop the double to stop it.
//!
//! ```
//! use qdrant_client::Qdrant;
//! use qdrant_client::qdrant::{CreateCollectionBuilder, Distance, VectorParamsBuilder};
//!
//! let double = qdrant_double::QdrantDouble::start();
//! let client = Qdrant::from_url(&double.url()).skip_compatibility_check().build().unwrap();
//! tokio::runtime::Runtime::new().unwrap().block_on(async {
//!     client
//!         .create_collection(
//!             CreateCollectionBuilder::new("docs")
//!                 .vectors_config(VectorParamsBuilder::new(3, Distance::Cosine)),
//!         )
//!         .await
//!         .unwrap();
//! });
//! assert_eq!(double.collection_size("docs"), Some(3));
//! assert_eq!(double.calls("create"), 1);
//! ```
//!
//! # What is modelled
//!
//! Collections: `collection_exists`, `get`, `create` (one unnamed dense vector), `delete`,
//! `list`. Points: `upsert` (numeric ids, one dense vector, payload), `delete` (by ids or
//! filter), `query` (nearest to a dense vector, with filter, limit, offset, score threshold,
//! payload and vector selection), `count`, `scroll`, `create_field_index`, `set_payload`.
//! Filters: see [`filter`]. Every other RPC answers `unimplemented`; a modelled RPC given an
//! option the double does not model (UUID ids, named or sparse vectors, prefetch, nested or geo
//! conditions, text match, shard keys, ...) answers `invalid_argument` with a message naming
//! it, so a test notices the engine sent something new.
//!
//! Errors use the codes Qdrant uses: `not_found` for a missing collection, `already_exists`
//! for creating one twice, `invalid_argument` for a vector of the wrong dimension,
//! `unauthenticated` without the API key, `unavailable` while [`QdrantDouble::set_unavailable`].
//!
//! Note that qdrant-client retries a **points** call once when it fails with `unavailable`,
//! `internal`, `unknown` or `cancelled` (collections calls are not retried), so one failed
//! `upsert_points` counts as two `calls("upsert")`.
//!
//! # What a real Qdrant does that the double does not
//!
//! - **Approximate search.** Qdrant searches an HNSW graph (exact only below
//!   `full_scan_threshold`, or with `exact: true`), and may score with quantised vectors; the
//!   double scores every point exactly, so its results are what an ideal index would return.
//!   Ties are broken by id here; Qdrant's order among equal scores is unspecified.
//! - **Payload indexes.** The double records `create_field_index` calls but filters work on
//!   any field with or without one. A real Qdrant in strict mode (the Qdrant Cloud default)
//!   refuses filters on unindexed fields, full-text match needs a text index, and an index's
//!   type can change what matches (an integer index does not match keyword conditions).
//! - **Consistency and `wait`.** Every write here is applied before the reply, whatever
//!   `wait` says; a real Qdrant with `wait: false` (the builders' default) acknowledges first
//!   and applies later, so a read right after may not see the write. The double does answer
//!   `Acknowledged` for `wait: false` and `Completed` for `wait: true`, as Qdrant does. Write
//!   ordering, read consistency, replication and shards are ignored.
//! - **Optimisers.** No segments, vacuum or indexing: `get` always reports status green, one
//!   segment, `indexed_vectors_count` 0 and Qdrant's default HNSW, optimiser and WAL settings,
//!   whatever the collection was created with. Quantisation, on-disk and datatype settings are
//!   accepted and ignored.
//! - **Limits and persistence.** No strict-mode limits, rate limits or timeouts; requests up to
//!   64 MiB are accepted; plain HTTP/2 only (no TLS); nothing survives the double.
//! - **Payload details.** `set_payload` merges top-level keys (a null value is stored as null);
//!   its nested `key` option is not modelled. Payload include/exclude selectors take top-level
//!   keys only. The health check needs no API key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use qdrant_client::qdrant::collections_server::CollectionsServer;
use qdrant_client::qdrant::points_server::PointsServer;
use qdrant_client::qdrant::qdrant_server::QdrantServer;
use qdrant_client::qdrant::{Filter, Value};
use tokio::sync::oneshot;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

pub mod filter;
mod service;
mod state;

use service::{Service, Shared};

/// The largest request the double decodes (tonic's default is 4 MiB; Qdrant accepts more).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A running in-memory Qdrant gRPC server. Dropping it shuts the server down.
pub struct QdrantDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl QdrantDouble {
    /// Starts a double that accepts every call. Returns once the port is listening.
    pub fn start() -> QdrantDouble {
        Self::launch(None)
    }

    /// Starts a double that refuses (`unauthenticated`) every call without metadata
    /// `api-key: <key>`, which is what `Qdrant::from_url(..).api_key(key)` sends.
    pub fn start_with_api_key(key: &str) -> QdrantDouble {
        Self::launch(Some(key.to_owned()))
    }

    fn launch(api_key: Option<String>) -> QdrantDouble {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .unwrap_or_else(|e| panic!("qdrant-double: cannot listen on 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("qdrant-double: no local address: {e}"));
        let shared = Arc::new(Shared::new(api_key));
        let (shutdown, stop) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let service = Service {
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name(format!("qdrant-double-{}", addr.port()))
            .spawn(move || serve(listener, service, stop, ready_tx))
            .unwrap_or_else(|e| panic!("qdrant-double: cannot spawn its thread: {e}"));
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("qdrant-double: cannot start: {e}"),
            Err(_) => panic!("qdrant-double: the server thread ended while starting"),
        }
        QdrantDouble {
            shared,
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The gRPC endpoint, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// While `down`, every RPC (health check included) answers
    /// `unavailable("qdrant-double: down")`. Calls are still counted.
    pub fn set_unavailable(&self, down: bool) {
        self.shared.set_down(down);
    }

    /// How many requests of one RPC reached the double, refused ones included.
    ///
    /// Names are the methods of qdrant-client's server traits: `create`, `collection_exists`,
    /// `get` (collection info), `list`, `delete_collection`; `upsert`, `delete` (points),
    /// `query`, `scroll`, `count`, `create_field_index`, `set_payload`, `get_points`, ...;
    /// `health_check`. A qualified `collections.delete` or `points.get` works too.
    pub fn calls(&self, rpc: &str) -> usize {
        let state = self.shared.inspect();
        service::call_key(rpc)
            .iter()
            .filter_map(|key| state.calls.get(key))
            .sum()
    }

    /// The ids stored in `collection`, ascending (empty if there is no such collection).
    pub fn point_ids(&self, collection: &str) -> Vec<u64> {
        self.shared
            .inspect()
            .collections
            .get(collection)
            .map(|c| c.points.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The payload stored for point `id`, or `None` if there is no such point.
    pub fn payload(
        &self,
        collection: &str,
        id: u64,
    ) -> Option<std::collections::HashMap<String, Value>> {
        self.shared
            .inspect()
            .collections
            .get(collection)?
            .points
            .get(&id)
            .map(|p| p.payload.clone())
    }

    /// The vector dimension `collection` was created with.
    pub fn collection_size(&self, collection: &str) -> Option<u64> {
        self.shared
            .inspect()
            .collections
            .get(collection)
            .map(|c| c.size)
    }

    /// The payload fields `create_field_index` was called for, sorted.
    pub fn field_indexes(&self, collection: &str) -> Vec<String> {
        self.shared
            .inspect()
            .collections
            .get(collection)
            .map(|c| c.field_indexes.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The filter of the latest `query` call that got past the API-key check (`None` if it had
    /// none, or if there was no query yet).
    pub fn last_query_filter(&self) -> Option<Filter> {
        self.shared.inspect().last_query_filter.clone()
    }
}

impl Drop for QdrantDouble {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for QdrantDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantDouble")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

/// The server thread: a current-thread runtime serving until `stop` fires (or the double is
/// dropped). Dropping the runtime then closes every open connection at once.
fn serve(
    listener: std::net::TcpListener,
    service: Service,
    stop: oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(format!("no tokio runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = ready.send(Err(format!("cannot adopt the listener: {e}")));
                return;
            }
        };
        let collections = CollectionsServer::new(service.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let points = PointsServer::new(service.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let health = QdrantServer::new(service);
        let server = Server::builder()
            .add_service(collections)
            .add_service(points)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener));
        tokio::spawn(server);
        let _ = ready.send(Ok(()));
        let _ = stop.await;
    });
}
