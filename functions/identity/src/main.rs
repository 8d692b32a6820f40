//! Lambda for organizations, projects, users and the caller's personal API key
//! (`/api/organizations/…`, `/api/projects/`, `/api/projects/{id}/`, `/api/users/…`,
//! `/api/personal_api_keys/…`). Thin on purpose: everything lives in `shared::api`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::api::serve(shared::api::Group::Identity).await
}
