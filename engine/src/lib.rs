//! instant-db engine library.
