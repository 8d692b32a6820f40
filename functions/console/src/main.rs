//! Lambda for the web console: `/`, `/project/{proxy+}` and `/console/{file}`. Thin on
//! purpose: everything lives in the library.

use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|request: Request| async move {
        Ok::<_, Error>(console::handle(&request))
    }))
    .await
}
