//! instant-db operator.
