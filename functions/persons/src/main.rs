//! Lambda for persons (`/api/projects/{project_id}/persons/`). Thin on purpose: everything
//! lives in `shared::api`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::api::serve(shared::api::Group::Persons).await
}
