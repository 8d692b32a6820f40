//! The local API: every function of template.yaml served in one process, behind a stand-in for
//! API Gateway's HTTP API (`make dev`, `make test`).
//!
//! Each request becomes the payload format 2.0 event API Gateway would send, is converted by
//! lambda_http exactly as in the Lambda runtime, and is answered by the function's own handler,
//! concurrently, like Lambda scaling out instances. Functions without routes (the cohort-jobs
//! stream worker) are invoked through Lambda's Invoke API path,
//! `POST /2015-03-31/functions/{name}/invocations`, as the local stream pump does.
//!
//! Usage: `local-api [--port 9000] [--address 127.0.0.1] [--template template.yaml]`

mod functions;
mod gateway;
mod routes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming as HyperBody};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::Body;
use tokio::net::TcpListener;

use functions::Functions;
use gateway::Incoming;
use routes::Routes;

struct Server {
    routes: Routes,
    functions: Functions,
}

type HttpResponse = hyper::Response<Full<Bytes>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // This server runs debug builds, whose handler frames are several times larger than the
    // release builds Lambda runs; roomy worker stacks keep a deep request from aborting the
    // whole process (every function shares it).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(16 * 1024 * 1024)
        .build()?
        .block_on(serve())
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    shared::api::tracing_subscriber_init();
    let args = Args::parse(std::env::args().skip(1))?;
    let template = std::fs::read_to_string(&args.template)
        .map_err(|e| format!("cannot read {}: {e}", args.template))?;
    let routes = Routes::from_template(&template)?;
    let functions = Functions::load(&routes.functions).await?;
    let server = Arc::new(Server { routes, functions });
    let listener = TcpListener::bind(args.address).await?;
    eprintln!(
        "local-api: serving {} routes of {} functions on http://{}",
        server.routes.count(),
        server.routes.functions.len(),
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let server = Arc::clone(&server);
                async move { Ok::<_, Infallible>(server.answer(req).await) }
            });
            // A client that hangs up mid-request is its own business.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Server {
    async fn answer(&self, req: hyper::Request<HyperBody>) -> HttpResponse {
        let started = Instant::now();
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let response = self.dispatch(req).await;
        let (status, ms) = (
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1e3,
        );
        // The pumps' Invoke API calls (the schedule pump's every few seconds) are not client
        // traffic: logged only with RUST_LOG=debug.
        if path.starts_with("/2015-03-31/functions/") {
            tracing::debug!("{method} {path} {status} {ms:.1} ms");
        } else {
            tracing::info!("{method} {path} {status} {ms:.1} ms");
        }
        response
    }

    async fn dispatch(&self, req: hyper::Request<HyperBody>) -> HttpResponse {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, gateway::MAX_REQUEST_BODY)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return to_hyper(gateway::gateway_error(413, "Request Entity Too Large")),
        };
        let headers = parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let incoming = Incoming {
            method: parts.method.as_str(),
            raw_path: parts.uri.path(),
            raw_query: parts.uri.query(),
            headers,
            body: &body,
        };
        if let Some(function) = invoke_target(&incoming) {
            return to_hyper(self.functions.invoke(function, &body).await);
        }
        if incoming.is_preflight() {
            return to_hyper(gateway::preflight(&incoming));
        }
        let origin = parts.headers.get("origin").and_then(|o| o.to_str().ok());
        let Some(matched) = self.routes.find(incoming.method, incoming.raw_path) else {
            return to_hyper(gateway::outgoing(
                gateway::gateway_error(404, "Not Found"),
                origin,
            ));
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let event = gateway::event(&incoming, &matched, &request_id);
        // The event travels to Lambda as JSON text: measured and read in that one form.
        let event = event.to_string();
        if event.len() > gateway::MAX_INVOKE_PAYLOAD {
            return to_hyper(gateway::gateway_error(413, "Request Entity Too Large"));
        }
        let response = match gateway::lambda_request(&event) {
            Ok(request) => self.functions.call(&matched.route.function, request).await,
            Err(e) => {
                tracing::error!("{e}");
                gateway::gateway_error(500, "Internal Server Error")
            }
        };
        let mut response = to_hyper(gateway::outgoing(response, origin));
        response.headers_mut().insert(
            "apigw-requestid",
            request_id.parse().expect("a uuid is a valid header"),
        );
        response
    }
}

/// The function named by Lambda's Invoke API path, if this is such a call.
fn invoke_target<'a>(incoming: &Incoming<'a>) -> Option<&'a str> {
    let rest = incoming.raw_path.strip_prefix("/2015-03-31/functions/")?;
    let function = rest.strip_suffix("/invocations")?;
    (incoming.method == "POST" && !function.contains('/')).then_some(function)
}

fn to_hyper(response: lambda_http::Response<Body>) -> HttpResponse {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

struct Args {
    address: SocketAddr,
    template: String,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut ip = "127.0.0.1".to_string();
        let mut port = "9000".to_string();
        let mut template = "template.yaml".to_string();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--port" => port = value,
                "--address" => ip = value,
                "--template" => template = value,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        let address = format!("{ip}:{port}")
            .parse()
            .map_err(|e| format!("bad address {ip}:{port}: {e}"))?;
        Ok(Args { address, template })
    }
}
