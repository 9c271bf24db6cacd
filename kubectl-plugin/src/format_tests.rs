//! Unit tests of the screens, from objects.
#![allow(clippy::unwrap_used)]

use super::*;
