//! The llm-security service as an AWS Lambda function: the same axum
//! application `llmsec serve` runs (REST and GraphQL analysis API, keys,
//! Sentinel), driven by the Lambda Runtime API through `lambda_http`
//! instead of a socket. API Gateway (REST and HTTP APIs), function URLs
//! and ALB events are turned into HTTP requests and the answers back.
//!
//! Configuration comes from the environment only (`LLMSEC_*`, as for
//! `llmsec serve`): `LLMSEC_ADMIN_KEY` bootstraps an admin key,
//! `LLMSEC_DATABASE_URL` points replicas at one PostgreSQL. Without it the
//! store is SQLite under `/tmp/llmsec` (Lambda's only writable path), which
//! lives as long as the execution environment: fine for stateless analysis,
//! not for keeping events.
//!
//! An answered request is durable (the writer commits before the answer).
//! Background work (webhook deliveries, Sentinel's periodic detectors)
//! runs only while the environment is thawed, so deploy a long-running
//! `llmsec serve` on the same PostgreSQL for those; docs/SERVERLESS.md.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use llmsec_server::Server;
use llmsec_server::config::ServerConfig;

/// Lambda's one writable directory.
const DATA_DIR: &str = "/tmp/llmsec";

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LLMSEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // CloudWatch takes stderr lines as they are; no colours.
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();

    let mut config = ServerConfig { data_dir: DATA_DIR.into(), ..ServerConfig::default() };
    config.apply_env(|k| std::env::var(k).ok())?;
    config.validate()?;
    let server = Server::start(config, std::env::var("LLMSEC_ADMIN_KEY").ok()).await?;
    let app =
        tower::ServiceBuilder::new().map_request(without_stage).map_request(with_source_ip).service(server.router());
    lambda_http::run(app).await
}

/// A REST API (payload 1.0) on its execute-api address names the stage
/// first in the path (`/prod/api/security/analyze`); the service's routes
/// start at `/api`, so the stage is taken off. (`lambda_http` does the
/// same when `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set; doing it here
/// needs no setting.)
fn without_stage(mut req: Request) -> Request {
    let Some(RequestContext::ApiGatewayV1(c)) = req.request_context_ref() else { return req };
    let Some(stage) = c.stage.as_deref().filter(|s| !s.is_empty()) else { return req };
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) else { return req };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return req;
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Gives the request the caller's address, as the socket listener does, so
/// per-address limits, sign-in throttles and Sentinel's address blocks
/// apply: API Gateway and function URLs name it in the request context;
/// behind an ALB it is the last `X-Forwarded-For` entry, which the
/// balancer appends.
fn with_source_ip(mut req: Request) -> Request {
    let ip = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.http.source_ip.clone(),
        Some(RequestContext::ApiGatewayV1(c)) => c.identity.source_ip.clone(),
        Some(RequestContext::Alb(_)) => req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|s| s.trim().to_owned()),
        _ => None,
    };
    if let Some(ip) = ip.and_then(|s| s.parse::<IpAddr>().ok()) {
        req.extensions_mut().insert(ConnectInfo(SocketAddr::new(ip, 0)));
    }
    req
}
