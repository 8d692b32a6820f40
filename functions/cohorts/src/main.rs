//! Lambda for cohorts (`/api/projects/{project_id}/cohorts/`, `/{id}/`, `/{id}/persons/`).
//! Thin on purpose: everything lives in `shared::api`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::api::serve(shared::api::Group::Cohorts).await
}
