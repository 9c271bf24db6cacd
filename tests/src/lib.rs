//! Cross-crate tests: see tests/tests/.
