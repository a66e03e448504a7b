//! `weir serve --http ADDR`: Prometheus metrics (`/metrics`), a JSON API (`/api/v1/...`) and the
//! web dashboard (`/`) over HTTP/1.1, beside the Postgres wire protocol. A thin adapter over
//! `Session`, as pgwire is: the API answers with what SHOW JOBS / SHOW CHECKPOINTS show, and its
//! POSTs run the SQL commands' own code, with their checks.
//!
//! Clients are trusted on a loopback address only; elsewhere they must send a user's password
//! (HTTP Basic, against the pgwire password file), unless the operator trusts the network.

pub mod api;
pub mod dashboard;
pub mod metrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::engine::database::Database;
use crate::error::{Error, Result, UserErrorKind};
use crate::settings::server::{PasswordFile, check_listen_address};

/// A request body larger than this is refused (the API's bodies are a few bytes of JSON).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// A client that has not sent its request headers by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct HttpOptions {
    pub listen: SocketAddr,
    /// Every client is trusted: off a loopback address only on explicit request.
    pub trust_remote: bool,
    /// HTTP Basic authentication against these users instead of trust.
    pub passwords: Option<Arc<PasswordFile>>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A bound HTTP listener; `run` serves it until the process ends.
pub struct HttpServer {
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

struct State {
    db: Arc<Database>,
    passwords: Option<Arc<PasswordFile>>,
}

impl HttpServer {
    /// Binds the listener (refusing a non-loopback address with every client trusted), so that a
    /// taken port fails `weir serve` at start and not later.
    pub async fn bind(db: Arc<Database>, options: HttpOptions) -> Result<Self> {
        check_listen_address(options.listen, options.passwords.as_deref(), options.trust_remote, "HTTP")?;
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|e| Error::invalid(format!("cannot listen for HTTP on {}: {e}", options.listen)))?;
        Ok(HttpServer {
            listener,
            state: Arc::new(State {
                db,
                passwords: options.passwords,
            }),
            tls: options.tls,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub async fn run(self) {
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("HTTP accept failed: {e}");
                    // Out of file descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let state = Arc::clone(&self.state);
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let served = match tls {
                    Some(tls) => match tokio::time::timeout(HEADER_TIMEOUT, tls.accept(socket)).await {
                        Ok(Ok(stream)) => serve_connection(stream, state).await,
                        Ok(Err(e)) => Err(e.into()),
                        Err(_) => Err(Error::invalid("TLS handshake timed out")),
                    },
                    None => serve_connection(socket, state).await,
                };
                if let Err(e) = served {
                    tracing::debug!("HTTP connection from {peer} ended: {e}");
                }
            });
        }
    }
}

async fn serve_connection<IO>(io: IO, state: Arc<State>) -> Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(respond(&state, request).await) }
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await
        .map_err(|e| Error::invalid(format!("HTTP: {e}")))
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Dashboard,
    Metrics,
    Jobs,
    Job(String),
    Checkpoints(String),
    Savepoints,
    TriggerSavepoint(String),
    StopJob(String),
}

/// The route of `method` and `path`; `Err` with the status to answer otherwise.
fn route_of(method: &Method, path: &str) -> std::result::Result<Route, StatusCode> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let route = match segments.as_slice() {
        [] | [""] | ["index.html"] => (Method::GET, Route::Dashboard),
        ["metrics"] => (Method::GET, Route::Metrics),
        ["api", "v1", "jobs"] => (Method::GET, Route::Jobs),
        ["api", "v1", "savepoints"] => (Method::GET, Route::Savepoints),
        ["api", "v1", "jobs", name] => (Method::GET, Route::Job(decode_segment(name)?)),
        ["api", "v1", "jobs", name, "checkpoints"] => (Method::GET, Route::Checkpoints(decode_segment(name)?)),
        ["api", "v1", "jobs", name, "savepoints"] => (Method::POST, Route::TriggerSavepoint(decode_segment(name)?)),
        ["api", "v1", "jobs", name, "stop"] => (Method::POST, Route::StopJob(decode_segment(name)?)),
        _ => return Err(StatusCode::NOT_FOUND),
    };
    // HEAD is GET without the body (hyper drops it).
    let (expected, route) = route;
    if *method == expected || (expected == Method::GET && *method == Method::HEAD) {
        Ok(route)
    } else {
        Err(StatusCode::METHOD_NOT_ALLOWED)
    }
}

/// A path segment with its %XX escapes decoded (a job name may hold any UTF-8).
fn decode_segment(segment: &str) -> std::result::Result<String, StatusCode> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(StatusCode::BAD_REQUEST)?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| StatusCode::BAD_REQUEST)
}

/// Whether the request carries a user's password (HTTP Basic), where passwords are required.
fn authorized(state: &State, request: &Request<Incoming>) -> bool {
    let Some(passwords) = &state.passwords else { return true };
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()).ok())
        .and_then(|v| String::from_utf8(v).ok());
    match credentials.as_deref().and_then(|c| c.split_once(':')) {
        Some((user, password)) => passwords.verify(user, password),
        None => false,
    }
}

async fn respond(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if !authorized(state, &request) {
        let mut response = json_error(StatusCode::UNAUTHORIZED, "28P01", "a user and password are required (HTTP Basic)");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"weir\", charset=\"UTF-8\""),
        );
        return response;
    }
    let route = match route_of(request.method(), request.uri().path()) {
        Ok(route) => route,
        Err(status) => {
            let reason = status.canonical_reason().unwrap_or("error");
            return json_error(status, "42704", &format!("{reason}: {} {}", request.method(), request.uri().path()));
        }
    };
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "54000",
                &format!("cannot read the request body: {e}"),
            );
        }
    };
    let answer = match route {
        Route::Dashboard => {
            return response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(dashboard::PAGE.as_bytes()),
            );
        }
        Route::Metrics => {
            return match metrics::exposition(&state.db) {
                Ok(text) => response(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    Bytes::from(text),
                ),
                Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "XX000", "cannot encode the metrics"),
            };
        }
        Route::Jobs => api::jobs(&state.db),
        Route::Job(name) => api::job(&state.db, &name),
        Route::Checkpoints(name) => api::checkpoints(&state.db, &name),
        Route::Savepoints => api::savepoints(&state.db),
        Route::TriggerSavepoint(name) => api::trigger_savepoint(&state.db, &name, &body).await,
        Route::StopJob(name) => api::stop_job(&state.db, &name, &body).await,
    };
    match answer.and_then(|value| Ok(serde_json::to_vec_pretty(&value)?)) {
        Ok(json) => response(StatusCode::OK, "application/json", Bytes::from(json)),
        Err(e) => json_error(status_of(&e), e.sqlstate(), &e.to_string()),
    }
}

/// The HTTP status of an error: what kind of mistake it is, as the SQLSTATE says in SQL.
fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::User { kind, .. } => match kind {
            UserErrorKind::UndefinedObject | UserErrorKind::UndefinedName => StatusCode::NOT_FOUND,
            UserErrorKind::InvalidState | UserErrorKind::DuplicateObject => StatusCode::CONFLICT,
            UserErrorKind::InsufficientPrivilege => StatusCode::FORBIDDEN,
            UserErrorKind::JobFailed | UserErrorKind::ExternalSystem | UserErrorKind::Io | UserErrorKind::DiskFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::BAD_REQUEST,
        },
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Figures change from one request to the next.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_error(status: StatusCode, sqlstate: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": message, "code": sqlstate });
    response(status, "application/json", Bytes::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let get = |path: &str| route_of(&Method::GET, path);
        assert_eq!(get("/"), Ok(Route::Dashboard));
        assert_eq!(get("/metrics"), Ok(Route::Metrics));
        assert_eq!(get("/api/v1/jobs/"), Ok(Route::Jobs));
        assert_eq!(get("/api/v1/jobs/my%20job"), Ok(Route::Job("my job".into())));
        assert_eq!(get("/api/v1/jobs/j1/checkpoints"), Ok(Route::Checkpoints("j1".into())));
        assert_eq!(route_of(&Method::HEAD, "/metrics"), Ok(Route::Metrics));
        assert_eq!(route_of(&Method::POST, "/api/v1/jobs/j1/stop"), Ok(Route::StopJob("j1".into())));
        assert_eq!(get("/api/v1/jobs/j1/stop"), Err(StatusCode::METHOD_NOT_ALLOWED));
        assert_eq!(route_of(&Method::POST, "/metrics"), Err(StatusCode::METHOD_NOT_ALLOWED));
        assert_eq!(get("/api/v2/jobs"), Err(StatusCode::NOT_FOUND));
        assert_eq!(get("/api/v1/jobs/%zz"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(get("/api/v1/jobs/%ff"), Err(StatusCode::BAD_REQUEST));
    }
}
