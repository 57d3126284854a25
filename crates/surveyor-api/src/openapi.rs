//! The OpenAPI document of the API, generated from the handlers' own annotations (utoipa), so
//! that it cannot drift from the code; served at `/api/v1/openapi.json`.

use std::sync::OnceLock;

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::params::{NoParams, Params};
use crate::ApiError;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The edge's answers, which every operation can give whatever its handler does: a body over
/// `--max-body` (413), and a request past `--request-timeout` or a query past
/// `--statement-timeout` (503 with `Retry-After`). An operation that documents its own 503
/// (`/readyz`) keeps its description.
struct EdgeResponses;

impl Modify for EdgeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let answer = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let responses = &mut operation.responses.responses;
                responses.entry("413".to_string()).or_insert_with(|| {
                    answer("The request's body is larger than the server accepts").into()
                });
                responses.entry("503".to_string()).or_insert_with(|| {
                    answer(
                        "The request or a store query ran past its time limit; retry after \
                         `Retry-After` seconds",
                    )
                    .into()
                });
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Surveyor API",
        description = "The census of on-premises Microsoft Exchange servers: aggregates for \
                       analysts, host-level data for analysts and admins, exports for \
                       researchers. Contract in docs/output.md."
    ),
    paths(
        crate::get_census,
        crate::get_scans,
        crate::get_statistics,
        crate::get_trends,
        crate::hosts::get_hosts,
        crate::get_host,
        crate::hosts::get_organisations,
        crate::export::get_export,
        crate::export::get_export_log,
        crate::get_ready,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth, &EdgeResponses),
)]
struct ApiDoc;

/// The document, built once.
pub(crate) fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

pub(crate) async fn get_openapi(
    query: Result<Params<NoParams>, ApiError>,
) -> Result<Json<&'static utoipa::openapi::OpenApi>, ApiError> {
    query?;
    Ok(Json(document()))
}
