//! Request-head limits answered in the API's JSON error shape.
//!
//! The engine's own limits (`limits.max_uri_bytes`, `limits.max_header_bytes`) are checked here,
//! before auth and routing, and a head over one of them gets a JSON error naming the limit. The
//! HTTP library has limits of its own, checked before any handler runs: a request target over
//! 64 KiB (hard-coded), more headers than it is set to parse, a head over its read buffer.
//! [`super::accept`] sets the last two well above the engine's limits, so that these answer first
//! for anything within them, and rewrites the library's own refusals (otherwise an empty body)
//! into the same JSON error: 414 `uri_too_long`, 431 `headers_too_large`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::error::Error;

/// The two limits, copied out of the configuration for the middleware's state.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
}

/// Bytes of the request target as sent (path and query).
fn target_len(req: &Request) -> usize {
    req.uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().len(), |pq| pq.as_str().len())
}

/// Bytes of the header names and values (what a client controls; separators not counted).
fn header_bytes(headers: &axum::http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.as_bytes().len())
        .sum()
}

/// Which limit a request head breaks, if any.
pub fn check_head(limits: HeadLimits, target: usize, headers: usize) -> Result<(), Error> {
    if target > limits.max_uri_bytes {
        return Err(Error::UriTooLong(format!(
            "the request target is {target} bytes, over limits.max_uri_bytes ({}); send long \
             queries in a POST body",
            limits.max_uri_bytes
        )));
    }
    if headers > limits.max_header_bytes {
        return Err(Error::HeadersTooLarge(format!(
            "the request headers are {headers} bytes, over limits.max_header_bytes ({})",
            limits.max_header_bytes
        )));
    }
    Ok(())
}

pub async fn refuse_oversized_heads(
    State(limits): State<HeadLimits>,
    req: Request,
    next: Next,
) -> Response {
    match check_head(limits, target_len(&req), header_bytes(req.headers())) {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError(e).into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_uri_bytes: 100,
        max_header_bytes: 200,
    };

    #[test]
    fn a_target_or_headers_over_their_limit_are_refused_with_the_limit_named() {
        assert!(check_head(LIMITS, 100, 200).is_ok());
        let e = check_head(LIMITS, 101, 0).unwrap_err();
        assert_eq!(e.http_status(), 414);
        assert_eq!(e.code(), "uri_too_long");
        assert!(e.to_string().contains("limits.max_uri_bytes"), "{e}");
        let e = check_head(LIMITS, 10, 201).unwrap_err();
        assert_eq!(e.http_status(), 431);
        assert_eq!(e.code(), "headers_too_large");
        assert!(e.to_string().contains("limits.max_header_bytes"), "{e}");
    }

    #[test]
    fn header_bytes_count_names_and_values() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-a", "12345".parse().unwrap());
        h.insert("authorization", "Bearer k".parse().unwrap());
        assert_eq!(header_bytes(&h), 3 + 5 + 13 + 8);
    }
}
