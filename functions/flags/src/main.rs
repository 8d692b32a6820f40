//! Lambda for SDK traffic: `/flags`, `/decide`, local-evaluation definitions and capture.
//! Thin on purpose: everything lives in `shared::api`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::api::serve(shared::api::Group::Flags).await
}
