//! Organizations, projects, users and the caller's personal API key: `/api/organizations/…`,
//! `/api/projects/`, `/api/projects/{id}/`, `/api/users/…`, `/api/personal_api_keys/…`.
//! (Being built for issue 13.)

use super::Context;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::store::IdentityStore;

pub async fn handle<S: IdentityStore>(_ctx: &Context<'_, S>, _req: &ApiRequest) -> ApiResponse {
    ApiResponse::from(ApiError::not_found())
}
