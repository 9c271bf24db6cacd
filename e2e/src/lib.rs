//! Real-cluster tests: see e2e/tests/.
