//! The OpenAPI description, generated from the handlers' annotations.

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

use super::AppState;
use super::auth::{Access, required_role};

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
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    /// Declares the bearer scheme and, on every operation that needs a key (decided by the same
    /// `auth::required_role` the server enforces, so the description cannot drift from it), the
    /// requirement, the role and the 401/403 answers.
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use axum::http::Method;
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
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
                (Method::HEAD, &mut item.head),
            ];
            for (method, op) in ops {
                let Some(op) = op.as_mut() else { continue };
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
                    ("401", "no key or a wrong key (`WWW-Authenticate: Bearer`)"),
                    (
                        "403",
                        "the key's role is below the one this operation needs",
                    ),
                ];
                for (status, text) in answers {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| {
                            RefOr::T(ResponseBuilder::new().description(text).build())
                        });
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
