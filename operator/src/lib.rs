//! instant-db operator: controllers, pure builders of Kubernetes objects, the engine client,
//! leader election, metrics and the HTTP server for probes.

pub mod builders;
pub mod controller;
pub mod engine_client;
pub mod error;
/// In-memory fake API server: only for tests and the benchmark (feature `fake-api`).
#[cfg(any(test, feature = "fake-api"))]
pub mod fake_api;
pub mod metrics;

pub use error::{Error, Result};
pub mod leader;
pub mod server;
pub mod tls;
