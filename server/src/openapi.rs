//! The OpenAPI document, generated from the handlers' annotations and the wire types.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tokenops", description = "Named, scoped, expiring API tokens managed as code."),
    paths(
        api::create_token, api::list_tokens, api::get_token, api::update_token, api::regenerate_token,
        api::revoke_token, api::delete_token, api::bulk_revoke, api::whoami, api::policy, api::verify, api::audit_log,
        api::healthz, api::readyz, api::metrics,
    ),
    components(schemas(
        tokenops_types::Token, tokenops_types::TokenStatus, tokenops_types::Resources, tokenops_types::AllResources,
        tokenops_types::ResourceRef, tokenops_types::CreateTokenRequest, tokenops_types::TokenWithSecret,
        tokenops_types::UpdateTokenRequest, tokenops_types::RegenerateRequest, tokenops_types::BulkRevokeRequest,
        tokenops_types::BulkRevokeResponse, tokenops_types::RevokeRequest, tokenops_types::PolicyDocument, tokenops_types::RoleDefinition, tokenops_types::RateLimitDocument, tokenops_types::VerifyRequest, tokenops_types::VerifyResponse,
        tokenops_types::VerifyCode, tokenops_types::VerifiedToken, tokenops_types::AuditEvent,
        tokenops_types::Problem, tokenops_types::Page<tokenops_types::Token>, tokenops_types::Page<tokenops_types::AuditEvent>,
    )),
    modifiers(&Security),
    tags((name = "tokens"), (name = "verify"), (name = "audit"), (name = "operations")),
)]
pub struct ApiDoc;

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}

pub async fn serve_document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
