//! instant-db engine library.
pub mod metrics;
pub mod resilience;
