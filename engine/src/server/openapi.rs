//! The OpenAPI description, generated from the handlers' annotations.

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

use super::AppState;
use super::auth::{Access, required_role};
use super::restores::is_write;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "instant-db",
        description = "Document search database: ingest, embed, search."
    ),
    paths(
        super::api::api_health,
        super::api::stats,
        super::api::search,
        super::api::add_documents,
        super::api::list_documents,
        super::api::get_document,
        super::api::delete_document,
        super::api::process_file,
        super::api::process_directory,
        super::export::export,
        super::sync::sync,
        super::api::config,
        super::health::health,
        super::health::live,
        super::health::ready,
        super::health::detailed,
        super::admin::integrity,
        super::admin::repair,
        super::admin::start_backup,
        super::admin::backup_status,
        super::admin::list_backups,
        super::admin::delete_backup,
        super::archive::archive_status,
        super::restores::restore_and_wait,
        super::restores::start_restore,
        super::restores::restore_status,
        super::verifications::start_verification,
        super::verifications::verification_status,
    ),
    components(schemas(super::ErrorBody)),
    // In this order: the error answers below give the 401/403 of `BearerAuth` their body too.
    modifiers(&BearerAuth, &ErrorResponses)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    /// Declares the bearer scheme and, on every operation that needs a key (decided by the same
    /// `auth::required_role` the server enforces, so the description cannot drift from it), the
    /// requirement, the role and the 401/403 answers.
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{RefOr, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "API key (`read` or `write` role) or the admin token (`admin` role)",
                    ))
                    .build(),
            ),
        );
        for (method, path, op) in operations(openapi) {
            // metrics_requires_key does not matter: /metrics is not in the description
            let Access::Needs(role) = required_role(&method, path, false) else {
                continue;
            };
            op.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
            let note = format!("Needs a key with the `{}` role.", role.as_str());
            op.description = Some(match op.description.take() {
                Some(d) => format!("{d}\n\n{note}"),
                None => note,
            });
            let answers = [
                ("401", default_description("401")),
                ("403", default_description("403")),
            ];
            for (status, text) in answers {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(text).build()));
            }
        }
    }
}

/// Every operation with its method (the description's paths hold one item per path).
fn operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<
    Item = (
        axum::http::Method,
        &str,
        &mut utoipa::openapi::path::Operation,
    ),
> {
    use axum::http::Method;
    openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
            (Method::HEAD, &mut item.head),
        ]
        .into_iter()
        .filter_map(move |(method, op)| op.as_mut().map(|op| (method, path.as_str(), op)))
    })
}

/// The name of the one error schema component (`ErrorBody`).
const ERROR_SCHEMA: &str = "Error";

struct ErrorResponses;

/// The error answers the layers in front of the handlers give, so every operation can get
/// them: which ones an operation gets follows from what it takes (a body, parameters) and
/// from the same `is_write` the write-refusing middlewares use.
fn common_errors(
    method: &axum::http::Method,
    path: &str,
    op: &utoipa::openapi::path::Operation,
) -> Vec<(&'static str, String)> {
    let has_body = op.request_body.is_some();
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut out = vec![];
    if has_body || has_params {
        // The extractors' rejections (`json_errors`) and the handlers' own checks.
        out.push((
            "400",
            "`invalid_input`: a malformed or missing body (a wrong `Content-Type` included), \
             query string or path parameter, or a value the operation refuses; the message \
             names it"
                .to_string(),
        ));
    }
    if has_body {
        out.push((
            "413",
            "`payload_too_large`: the body is over `limits.max_request_bytes`".to_string(),
        ));
    }
    out.push((
        "414",
        "`uri_too_long`: the request target is over `limits.max_uri_bytes` (or the HTTP \
         library's own 64 KiB)"
            .to_string(),
    ));
    out.push((
        "431",
        "`headers_too_large`: the request headers are over `limits.max_header_bytes` (or the \
         HTTP library's own header count or read buffer, set above it)"
            .to_string(),
    ));
    let mut unavailable =
        "`timeout`: the answer took longer than `limits.request_timeout_secs`".to_string();
    if is_write(method, path) {
        unavailable.push_str(
            "; `index_loading`: the vector index is still loading after the start, or \
             `restore_in_progress`: a restore runs (both with `Retry-After`; nothing was \
             written)",
        );
    }
    if path.starts_with("/api/") || path.starts_with("/admin/") {
        unavailable.push_str(
            "; or a dependency is down: `database_damaged`, `model_unavailable`, \
             `vector_store_unavailable`, `unavailable`, ... (the message says what to do)",
        );
    }
    out.push(("503", unavailable));
    out.push((
        "500",
        "`internal_error`, `database_error` or `io_error`: an unexpected failure; the message \
         says what failed"
            .to_string(),
    ));
    out
}

/// What an error answer declared without a description is, by its status.
fn default_description(status: &str) -> &'static str {
    match status {
        "400" => "`invalid_input`: the message says what is wrong",
        "401" => "`unauthorized`: no key or a wrong key (`WWW-Authenticate: Bearer`)",
        "403" => "`forbidden`: the key's role is below the one this operation needs",
        "404" => "`not_found`",
        "409" => "`conflict` or `operation_in_progress`",
        "429" => "`too_many_requests`: retry after the `Retry-After` seconds",
        _ => "an error",
    }
}

impl utoipa::Modify for ErrorResponses {
    /// Adds the common error answers (see [`common_errors`]) to every operation and gives
    /// every error answer (these, the handlers' own and the 401/403 of [`BearerAuth`]) the one
    /// JSON error schema, which is what the server sends for all of them (`ErrorBody`). An
    /// answer a handler declares with a body of its own (the probes' 503) keeps it.
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        for (method, path, op) in operations(openapi) {
            for (status, text) in common_errors(&method, path, op) {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(text).build()));
            }
            for (status, response) in op.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                if response.description.is_empty() {
                    response.description = default_description(status).to_string();
                }
                if response.content.is_empty() {
                    response.content.insert(
                        "application/json".to_string(),
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(ERROR_SCHEMA)))
                            .build(),
                    );
                }
            }
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { axum::Json(ApiDoc::openapi()) }),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_declares_the_common_errors_with_the_one_error_schema() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let error_ref = serde_json::json!({"$ref": "#/components/schemas/Error"});
        assert!(doc["components"]["schemas"]["Error"]["properties"]["error"].is_object());
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for status in ["414", "431", "500", "503"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
                let takes_input = op.get("requestBody").is_some()
                    || op["parameters"].as_array().is_some_and(|p| !p.is_empty());
                assert_eq!(
                    responses.contains_key("400"),
                    takes_input,
                    "{method} {path}: 400"
                );
                if op.get("requestBody").is_some() {
                    assert!(responses.contains_key("413"), "{method} {path}: 413");
                }
                for (status, r) in responses {
                    if status.as_str() >= "400" {
                        assert!(
                            !r["description"].as_str().unwrap().is_empty(),
                            "{method} {path}: {status} has no description"
                        );
                        let schema = &r["content"]["application/json"]["schema"];
                        // The probes answer 503 with their own report; every other error is the one shape.
                        if !path.starts_with("/health") {
                            assert_eq!(schema, &error_ref, "{method} {path}: {status}");
                        } else {
                            assert!(schema.is_object(), "{method} {path}: {status}");
                        }
                    }
                }
                checked += 1;
            }
        }
        assert!(checked >= 28, "{checked}");
    }

    #[test]
    fn writes_declare_the_index_loading_and_restore_refusals_and_reads_do_not() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let unavailable = |path: &str, method: &str| {
            doc["paths"][path][method]["responses"]["503"]["description"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let write = unavailable("/api/documents", "post");
        assert!(
            write.contains("index_loading") && write.contains("restore_in_progress"),
            "{write}"
        );
        let read = unavailable("/api/search", "post");
        assert!(
            read.contains("timeout") && !read.contains("index_loading"),
            "{read}"
        );
    }

    #[test]
    fn an_error_body_serializes_as_the_documented_shape() {
        let body = serde_json::to_value(super::super::ErrorBody::new(
            "not_found",
            "no such document",
        ))
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "not_found", "message": "no such document"}})
        );
    }
}
