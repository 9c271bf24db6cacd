//! Qdrant as the vector store for corpora beyond one node (`vector_store: qdrant`,
//! `docs/qdrant.md`). SQLite stays the source of truth: it keeps documents, chunks, full text
//! and every vector, and the collection is derived from it (`repair` and the start re-upload
//! what is missing, like the embedded index is rebuilt).

mod config;
pub mod filter;
pub mod payload;
mod store;
pub mod sync;

pub use config::{API_KEY_ENV, QdrantConfig, VectorStoreKind};
pub use store::{DEPENDENCY, QdrantVectors};
