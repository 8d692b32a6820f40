//! Lambda for early access features (`…/early_access_feature/…`, public `/api/early_access_features/`).
//! Thin on purpose: everything lives in `shared::api`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::api::serve(shared::api::Group::EarlyAccessFeatures).await
}
