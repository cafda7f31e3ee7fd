//! Serving the router: shared layers, and an HTTP/1.1 server whose limits
//! are set here rather than left to defaults.
//!
//! The header buffer is raised to 2 MiB so that an oversized `Authorization`
//! header reaches the extractor and gets a JSON 401 instead of a bare 431;
//! memory per connection stays bounded by that buffer.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use partner_auth_core::vault::{Channel, with_request_channel};

use crate::body::{BodyTimeout, MAX_BODY_BYTES};
use crate::error::{method_not_allowed_fallback, not_found_fallback};

/// Read buffer per connection, which bounds the size of the request head.
pub const MAX_HEAD_BYTES: usize = 2 * 1024 * 1024;

/// The channel of the security events a request raises, for the audit log:
/// `api` when it carries a bearer token (the same test the caller extractor
/// makes), `web` otherwise (a browser with cookies).
async fn declare_channel(req: axum::extract::Request, next: Next) -> Response {
    let channel = if matches!(crate::extract::bearer_token(req.headers()), Ok(Some(_))) {
        Channel::Api
    } else {
        Channel::Web
    };
    with_request_channel(channel, next.run(req)).await
}

/// Merges feature routers and adds the shared layers: JSON 404/405, a
/// 64 KiB body limit (routers may raise it for their own routes), the
/// audit channel of each request, and a tracing span per request (method
/// and path only: query strings can carry authorization codes and are
/// never logged).
pub fn app(routers: impl IntoIterator<Item = Router>) -> Router {
    let mut app = Router::new();
    for r in routers {
        app = app.merge(r);
    }
    app.fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed_fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(declare_channel))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        user = tracing::field::Empty,
                        partner = tracing::field::Empty,
                        session = tracing::field::Empty,
                    )
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
}

/// `app` with every body read by [`crate::body::JsonBody`] and
/// [`crate::body::OptionalJson`] limited to `timeout` (10 s without this).
pub fn with_body_timeout(app: Router, timeout: Duration) -> Router {
    app.layer(axum::Extension(BodyTimeout(timeout)))
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// requests finish for up to ten seconds.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .max_buf_size(MAX_HEAD_BYTES)
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("shutdown timed out with connections still open");
        }
    }
    Ok(())
}
