//! Placeholder: the persons endpoints (issue 7) are being built.

use super::Context;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::store::dynamo::DynamoStore;

pub async fn handle(_ctx: &Context<'_, DynamoStore>, _req: &ApiRequest) -> ApiResponse {
    ApiError::not_found().into()
}
