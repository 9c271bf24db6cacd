//! instant-db engine library.
pub mod chunk;
pub mod doctype;
pub mod parse;
