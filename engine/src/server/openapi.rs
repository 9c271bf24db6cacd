//! The OpenAPI description, generated from the handlers' annotations.

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

use super::AppState;

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
        super::restores::restore_and_wait,
        super::restores::start_restore,
        super::restores::restore_status,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { axum::Json(ApiDoc::openapi()) }),
    )
}
