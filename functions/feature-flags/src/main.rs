//! Lambda for `/api/projects/{project_id}/feature_flags/…`.
//! Thin on purpose: everything lives in `shared::api`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::api::serve(shared::api::Group::FeatureFlags).await
}
