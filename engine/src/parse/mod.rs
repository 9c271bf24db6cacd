//! PLACEHOLDER until the parse branch lands: the integrator replaces this file.
#[derive(Debug, thiserror::Error)]
#[error("parse error")]
pub struct ParseError;
