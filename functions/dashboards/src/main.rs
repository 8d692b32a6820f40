//! Lambda for flag usage dashboards (`/api/projects/{project_id}/dashboards/{id}/`). Thin on
//! purpose: everything lives in `shared::api`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::api::serve(shared::api::Group::Dashboards).await
}
