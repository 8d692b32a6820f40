//! Lambda for the flag activity log (`…/feature_flags/activity/`, `…/{id}/activity/`, revert).
//! Thin on purpose: everything lives in `shared::api`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::api::serve(shared::api::Group::Activity).await
}
