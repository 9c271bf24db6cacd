//! instant-db engine library.
pub mod backup;
pub mod metrics;
pub mod resilience;
pub mod sysres;
pub mod telemetry;
