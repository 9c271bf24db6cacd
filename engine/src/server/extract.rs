//! Request extraction with JSON errors: a malformed body is a 400 in the API's error shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

// One type for the handlers' errors, the auth refusals, the rejections rewritten by
// `json_errors` and the `Error` schema of the OpenAPI description, so that they cannot disagree.
/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error, example = json!({"error": {"code": "invalid_input", "message": "the query is empty"}}))]
pub struct ErrorBody {
    #[schema(inline)]
    pub error: ErrorDetail,
}

/// What failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `invalid_input`, `unauthorized`, `forbidden`,
    /// `not_found`, `payload_too_large`, `too_many_requests`, `timeout`, `index_loading`; the
    /// description of each answer names the codes it carries.
    pub code: &'static str,
    /// What went wrong and, where there is one, what to do about it.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }

    /// The answer with this body and `status`.
    pub fn with_status(self, status: StatusCode) -> Response {
        (status, axum::Json(self)).into_response()
    }
}

/// The error type of every handler.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// `axum::Json` whose rejections are `ApiError`s.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError(Error::TooLarge(
                    "the request body is over the limit (limits.max_request_bytes)".into(),
                )))
            }
            Err(rej) => Err(ApiError(Error::InvalidInput(format!(
                "invalid request body: {}",
                rej.body_text()
            )))),
        }
    }
}

/// Runs blocking engine work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> ApiResult<T> {
    // The work runs under the request's span, so its own spans (search, embedding, writes) are
    // the request's children in traces rather than unrelated roots.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| ApiError(Error::Internal(format!("worker failed: {e}"))))?
        .map_err(ApiError)
}
