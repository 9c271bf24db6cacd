//! instant-db engine: ingest documents, embed them with ONNX Runtime, store them in SQLite and
//! search them by meaning, by keyword, or both.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod archive;
pub mod assets;
pub mod backup;
pub mod bench;
pub mod bootstrap;
pub mod chunk;
pub mod cli;
pub mod config;
pub mod demo;
pub mod doctype;
pub mod embed;
pub mod engine;
pub mod error;
pub mod error_tracker;
pub mod export;
pub mod filter;
pub mod health;
pub mod index;
pub mod ingest;
pub mod job_records;
pub mod log_level;
pub mod maintenance;
pub mod metrics;
pub mod parse;
pub mod qdrant;
pub mod resilience;
pub mod restore_job;
pub mod search;
pub mod server;
pub mod shared_work;
pub mod store;
pub mod sysres;
pub mod telemetry;
pub mod verify;

pub use error::{Error, Result};
