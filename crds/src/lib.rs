//! instant-db CRD types.
