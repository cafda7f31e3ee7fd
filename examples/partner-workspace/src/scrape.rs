//! `GET /metrics`: the library's counters in the Prometheus text format.
//!
//! The route needs no credentials. Every label value comes from a fixed set
//! (auth modes, outcomes, failure codes; see `partner_auth_core::metrics`),
//! so a scrape shows no user, partner, token or request data. Where even
//! login counts should stay private, keep `/metrics` off the public proxy.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Content type of the Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Installs the process-wide Prometheus recorder and describes the
/// library's counters. Fails when another recorder is already installed.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    partner_auth_core::metrics::describe();
    Ok(handle)
}

/// The `GET /metrics` route over `handle`.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(handle)
}

async fn render(State(handle): State<PrometheusHandle>) -> Response {
    let mut response = handle.render().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
