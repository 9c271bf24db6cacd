//! instant-db engine: ingest documents, embed them with ONNX Runtime, store them in SQLite and
//! search them by meaning, by keyword, or both.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod assets;
pub mod chunk;
pub mod config;
pub mod doctype;
pub mod embed;
pub mod error;
pub mod filter;
pub mod index;
pub mod parse;
pub mod search;
pub mod store;

pub use error::{Error, Result};
