//! Lambda for `GET /api/schema/`: the OpenAPI document of every route (see the library).

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: Request| async move {
        Ok::<_, Error>(api_schema::handle(&event))
    }))
    .await
}
