//! The Qdrant collection as the engine's vector store: a blocking face over `qdrant-client`
//! (the engine's writes and searches run on worker threads), every call through the `qdrant`
//! circuit breaker and retry policy of `resilience`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, PointId, PointStruct, PointsIdsList, Query,
    QueryPointsBuilder, ScrollPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
    point_id::PointIdOptions,
};
use qdrant_client::{Payload, Qdrant, QdrantError};

use super::QdrantConfig;
use crate::error::{Error, Result};
use crate::resilience::CircuitBreaker;
use crate::resilience::settings::RetrySpec;

/// The dependency name of Qdrant's breaker and retries (`resilience.breakers.qdrant`).
pub const DEPENDENCY: &str = "qdrant";

pub struct QdrantVectors {
    client: Qdrant,
    collection: String,
    dimensions: u64,
    upload_batch: usize,
    /// The client's own runtime: the engine calls from blocking threads (and the CLI has none).
    runtime: Option<tokio::runtime::Runtime>,
    breaker: CircuitBreaker,
    retry: RetrySpec,
    /// Whether the collection was found (or made) with the right dimension.
    ready: AtomicBool,
}

/// Transient: worth another attempt (the server restarts, a timeout, overload).
fn is_transient(e: &QdrantError) -> bool {
    match e {
        QdrantError::ResponseError { status } => matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Aborted
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
        ),
        QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => true,
        _ => false,
    }
}

/// A failure in words, without response metadata (which `QdrantError`'s display prints).
fn describe(e: &QdrantError) -> String {
    match e {
        QdrantError::ResponseError { status }
        | QdrantError::ResourceExhaustedError { status, .. } => {
            let hint = match status.code() {
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                    "; check the API key (qdrant.api_key_file or INSTANT_DB_QDRANT_API_KEY)"
                }
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                    "; check that Qdrant runs and qdrant.url names its gRPC port (6334)"
                }
                _ => "",
            };
            format!("{:?}: {}{hint}", status.code(), status.message())
        }
        other => other.to_string(),
    }
}

fn point_id(id: i64) -> Result<PointId> {
    u64::try_from(id)
        .map(PointId::from)
        .map_err(|_| Error::Internal(format!("chunk id {id} cannot be a Qdrant point id")))
}

fn chunk_id(p: &PointId) -> Option<i64> {
    match p.point_id_options {
        Some(PointIdOptions::Num(n)) => i64::try_from(n).ok(),
        _ => None,
    }
}

impl QdrantVectors {
    /// A client for the configured collection. Makes no call: the collection is checked (and
    /// created) on first use, so an engine starts while Qdrant is still coming up.
    pub fn new(
        cfg: &QdrantConfig,
        api_key: Option<String>,
        dimensions: usize,
        breaker: CircuitBreaker,
        retry: RetrySpec,
    ) -> Result<QdrantVectors> {
        let url = cfg
            .url
            .clone()
            .ok_or_else(|| Error::Config("key `qdrant.url`: not set".into()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qdrant-client")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the Qdrant client's runtime", e))?;
        let timeout = Duration::from_secs_f64(cfg.timeout_secs);
        // The version check prints to stdout and makes a call; the first real call tells more.
        let client = Qdrant::from_url(&url)
            .api_key(api_key)
            .timeout(timeout)
            .connect_timeout(timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|e| Error::Config(format!("key `qdrant.url`: {}", describe(&e))))?;
        Ok(QdrantVectors {
            client,
            collection: cfg.collection.clone(),
            dimensions: dimensions as u64,
            upload_batch: cfg.upload_batch,
            runtime: Some(runtime),
            breaker,
            retry,
            ready: AtomicBool::new(false),
        })
    }

    pub fn collection(&self) -> &str {
        &self.collection
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Runs one call on the client's runtime and waits for it, with retries and the breaker.
    fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(Qdrant) -> Fut,
        Fut: Future<Output = std::result::Result<T, QdrantError>> + Send + 'static,
        T: Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Internal("the Qdrant client is shut down".into()))?;
        if let Err(retry_in) = self.breaker.try_acquire() {
            return Err(Error::VectorStore(format!(
                "{what}: the qdrant circuit breaker is open after repeated failures; retrying \
                 in {}s",
                retry_in.as_secs()
            )));
        }
        let attempt = crate::resilience::retry_blocking(
            what,
            self.retry.policy(),
            || {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let fut = f(self.client.clone());
                runtime.spawn(async move {
                    // The receiver waits below; it is gone only if this thread unwound.
                    let _ = tx.send(fut.await);
                });
                rx.recv().unwrap_or_else(|_| {
                    Err(QdrantError::ConversionError(
                        "the Qdrant call was dropped".into(),
                    ))
                })
            },
            is_transient,
            std::thread::sleep,
        );
        match attempt {
            Ok(v) => {
                self.breaker.record_success();
                Ok(v)
            }
            Err(e) => {
                self.breaker.record_failure();
                Err(Error::VectorStore(format!(
                    "{what} (collection `{}`): {}",
                    self.collection,
                    describe(&e)
                )))
            }
        }
    }

    /// Checks the collection once: creates it with the model's dimension and cosine distance
    /// when missing, refuses one of another dimension.
    pub fn ensure_collection(&self) -> Result<()> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let name = self.collection.clone();
        let exists = self.call("qdrant collection_exists", |c| {
            let name = name.clone();
            async move { c.collection_exists(name).await }
        })?;
        if exists {
            let info = self.call("qdrant collection_info", |c| {
                let name = name.clone();
                async move { c.collection_info(name).await }
            })?;
            let params = info
                .result
                .and_then(|r| r.config)
                .and_then(|c| c.params)
                .and_then(|p| p.vectors_config)
                .and_then(|v| v.config);
            match params {
                Some(VectorsConfigKind::Params(p)) if p.size == self.dimensions => {}
                Some(VectorsConfigKind::Params(p)) => {
                    return Err(Error::Config(format!(
                        "the Qdrant collection `{name}` holds {}-dimensional vectors but the \
                         model makes {}: point qdrant.collection at a new collection (the engine \
                         creates it and uploads the vectors), or delete this one",
                        p.size, self.dimensions
                    )));
                }
                _ => {
                    return Err(Error::Config(format!(
                        "the Qdrant collection `{name}` has named or no vectors; the engine needs \
                         one unnamed vector per point: point qdrant.collection at a new collection"
                    )));
                }
            }
        } else {
            let dims = self.dimensions;
            self.call("qdrant create_collection", |c| {
                let name = name.clone();
                async move {
                    c.create_collection(
                        CreateCollectionBuilder::new(name)
                            .vectors_config(VectorParamsBuilder::new(dims, Distance::Cosine)),
                    )
                    .await
                }
            })?;
            // Deleting a document's points filters on it; an index keeps that cheap.
            self.call("qdrant create_field_index", |c| {
                let name = name.clone();
                async move {
                    c.create_field_index(
                        CreateFieldIndexCollectionBuilder::new(
                            name,
                            "document_id",
                            FieldType::Keyword,
                        )
                        .wait(true),
                    )
                    .await
                }
            })?;
            tracing::info!(collection = %name, dimensions = dims, "created the Qdrant collection");
        }
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Stores vectors with their payloads (same id: replaced), in batches, waiting for each.
    pub fn upsert(
        &self,
        items: &[(i64, Vec<f32>)],
        payloads: &HashMap<i64, Payload>,
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.ensure_collection()?;
        for batch in items.chunks(self.upload_batch) {
            let points = batch
                .iter()
                .map(|(id, v)| {
                    Ok(PointStruct::new(
                        point_id(*id)?,
                        v.clone(),
                        payloads.get(id).cloned().unwrap_or_default(),
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let name = self.collection.clone();
            self.call("qdrant upsert", |c| {
                let request = UpsertPointsBuilder::new(name.clone(), points.clone()).wait(true);
                async move { c.upsert_points(request).await }
            })?;
        }
        Ok(())
    }

    pub fn delete(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.ensure_collection()?;
        for batch in ids.chunks(self.upload_batch.max(1024)) {
            let ids = batch
                .iter()
                .map(|id| point_id(*id))
                .collect::<Result<Vec<_>>>()?;
            let name = self.collection.clone();
            self.call("qdrant delete", |c| {
                let request = DeletePointsBuilder::new(name.clone())
                    .points(PointsIdsList { ids: ids.clone() })
                    .wait(true);
                async move { c.delete_points(request).await }
            })?;
        }
        Ok(())
    }

    /// The `k` nearest chunks to `query` among those `filter` admits, best first, with cosine
    /// similarity as the score (what the embedded index reports).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<Filter>,
    ) -> Result<Vec<(i64, f32)>> {
        self.ensure_collection()?;
        let name = self.collection.clone();
        let query = query.to_vec();
        let response = self.call("qdrant query", |c| {
            let mut request = QueryPointsBuilder::new(name.clone())
                .query(Query::new_nearest(query.clone()))
                .limit(k as u64);
            if let Some(f) = &filter {
                request = request.filter(f.clone());
            }
            async move { c.query(request).await }
        })?;
        Ok(response
            .result
            .iter()
            .filter_map(|p| Some((chunk_id(p.id.as_ref()?)?, p.score)))
            .collect())
    }

    /// How many points the collection holds.
    pub fn count(&self) -> Result<u64> {
        self.ensure_collection()?;
        let name = self.collection.clone();
        let response = self.call("qdrant count", |c| {
            let request = CountPointsBuilder::new(name.clone()).exact(true);
            async move { c.count(request).await }
        })?;
        Ok(response.result.map(|r| r.count).unwrap_or_default())
    }

    /// Every point id of the collection, ascending, one page of `page` at a time.
    pub fn ids(&self, page: u32) -> Result<Vec<i64>> {
        self.ensure_collection()?;
        let mut out = vec![];
        let mut offset: Option<PointId> = None;
        loop {
            let name = self.collection.clone();
            let from = offset.clone();
            let response = self.call("qdrant scroll", |c| {
                let mut request = ScrollPointsBuilder::new(name.clone())
                    .limit(page)
                    .with_payload(false)
                    .with_vectors(false);
                if let Some(o) = &from {
                    request = request.offset(o.clone());
                }
                async move { c.scroll(request).await }
            })?;
            out.extend(
                response
                    .result
                    .iter()
                    .filter_map(|p| chunk_id(p.id.as_ref()?)),
            );
            match response.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(out),
            }
        }
    }
}

impl Drop for QdrantVectors {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime (the server's).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
