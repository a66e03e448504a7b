//! `weir serve`: the Postgres wire protocol (pgwire) over `Session`. One session per connection;
//! jobs belong to the database, so they outlive the connection that created them. Simple and
//! extended query protocols, SCRAM or trust, TLS; the catalogs clients read (psql's `\d`) are in
//! `system_tables/pg_catalog.rs`.

pub mod admission;
mod copy_out;
mod datetime;
pub mod frames;
mod numeric;
mod pg_column;
mod socket;

use std::net::SocketAddr;
use std::sync::Arc;

use ::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use ::pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use ::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use ::pgwire::api::portal::{Format, Portal};
use ::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_describe_response};
use ::pgwire::api::results::{DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag};
use ::pgwire::api::stmt::{QueryParser, StoredStatement};
use ::pgwire::api::store::PortalStore;
use ::pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionGuard, ConnectionHandle, ConnectionManager, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use ::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use ::pgwire::messages::extendedquery::{Describe, TARGET_TYPE_BYTE_PORTAL};
use ::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use futures::Sink;
use futures::{StreamExt, stream};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::engine::database::Database;
use crate::engine::postgres_types::pg_type;
use crate::engine::session::{BlockChange, Output, Session};
use crate::error::{Error, Result};
use crate::pgwire::admission::Admission;
use crate::pgwire::pg_column::pg_columns;
use crate::planner::postgres_settings::postgres_setting;
use crate::planner::statement::parse_statements;
use crate::runtime::metrics::ServerMetrics;
use crate::settings::server::{PasswordFile, check_listen_address, tls_acceptor};

/// One connection: its own session over the shared database.
pub struct Connection {
    session: Session,
    /// Where cancel requests find this connection (registered at its first query).
    cancels: Arc<ConnectionManager>,
    registration: std::sync::Mutex<Option<(Arc<ConnectionHandle>, ConnectionGuard)>>,
}

/// Counts a statement and its time into the server's figures when dropped (however it ends).
struct QueryTimer {
    metrics: Arc<ServerMetrics>,
    started: std::time::Instant,
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        self.metrics.record_query(self.started.elapsed());
    }
}

impl QueryTimer {
    /// Keeps timing until the client has been sent the last row of `response` (or the rows are
    /// dropped, the client gone): a statement's latency includes sending its result.
    fn until_sent(self, response: &mut Response) {
        if let Response::Query(query) = response {
            let rows = std::mem::replace(&mut query.data_rows, Box::pin(stream::empty()));
            let stop = stream::once(async move { drop(self) }).filter_map(|()| async { None });
            query.data_rows = Box::pin(rows.chain(stop));
        }
    }
}

impl Connection {
    fn query_timer(&self) -> QueryTimer {
        QueryTimer {
            metrics: Arc::clone(self.session.database().server_metrics()),
            started: std::time::Instant::now(),
        }
    }

    fn new(session: Session, cancels: Arc<ConnectionManager>) -> Self {
        Connection {
            session,
            cancels,
            registration: std::sync::Mutex::new(None),
        }
    }

    /// Runs `work` unless a cancel request for this connection arrives first (then `None`).
    async fn cancellable<T>(&self, client: &impl ClientInfo, work: impl std::future::Future<Output = T>) -> Option<T> {
        let handle = match self.registration.lock() {
            Ok(mut registration) => {
                let (handle, _) = registration.get_or_insert_with(|| {
                    let (pid, secret) = client.pid_and_secret_key();
                    self.cancels.register(pid, secret)
                });
                Some(handle.clone())
            }
            Err(_) => None,
        };
        let Some(handle) = handle else { return Some(work.await) };
        let cancel = handle.start_query().await;
        tokio::select! {
            out = work => Some(out),
            Ok(()) = cancel => None,
        }
    }
}

/// The parameters a client is told at startup (ParameterStatus), with `server_version` as `SHOW`
/// gives it: drivers read the Postgres version from it (libpq's PQserverVersion).
fn server_parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    if let Some(version) = postgres_setting("server_version") {
        parameters.server_version = version.default.to_string();
    }
    parameters
}

/// Encodes result rows for the client, in text or binary per column as it asked.
fn encode_rows(schema: &SchemaRef, batches: &[RecordBatch], format: &Format) -> PgWireResult<Response> {
    let fields = Arc::new(field_infos(schema, format));
    let mut rows = Vec::new();
    for batch in batches {
        let columns = pg_columns(batch)?;
        for r in 0..batch.num_rows() {
            let mut encoder = DataRowEncoder::new(fields.clone());
            for column in &columns {
                column.encode(r, &mut encoder)?;
            }
            rows.push(Ok(encoder.take_row()));
        }
    }
    Ok(Response::Query(QueryResponse::new(fields, stream::iter(rows))))
}

/// One statement's output as its wire response; transaction control also tells pgwire the
/// block's state, which every ReadyForQuery reports.
fn response(output: Output, format: &Format) -> PgWireResult<Response> {
    Ok(match output {
        Output::Rows { schema, batches } => encode_rows(&schema, &batches, format)?,
        Output::Copy { schema, batches, options } => copy_out::encode_copy(&schema, &batches, &options)?,
        Output::Done { tag } => Response::Execution(Tag::new(&tag)),
        Output::Transaction { tag, block } => match block {
            BlockChange::Started => Response::TransactionStart(Tag::new(tag)),
            BlockChange::Ended => Response::TransactionEnd(Tag::new(tag)),
            BlockChange::Unchanged => Response::Execution(Tag::new(tag)),
        },
    })
}

fn field_infos(schema: &SchemaRef, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| FieldInfo::new(f.name().clone(), None, None, pg_type(f.data_type()), format.format_for(i)))
        .collect()
}

fn api_error(e: Error) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

/// A Weir error as the client should see it: ERROR with its SQLSTATE (not a generic XX000).
fn pg_error(e: Error) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        e.sqlstate().to_string(),
        e.to_string(),
    )))
}

/// Decodes the portal's parameters into values for the plan's `$n` placeholders.
fn parameter_values(portal: &Portal<String>, inferred: &[Type]) -> PgWireResult<Vec<ScalarValue>> {
    (0..portal.parameter_len())
        .map(|i| {
            let declared = portal.statement.parameter_types.get(i).cloned().flatten();
            let pg = declared
                .filter(|t| *t != Type::UNKNOWN)
                .or_else(|| inferred.get(i).cloned())
                .unwrap_or(Type::VARCHAR);
            Ok(match pg {
                Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, &pg)?),
                Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, &pg)?),
                Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, &pg)?),
                Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, &pg)?),
                Type::OID => ScalarValue::UInt32(portal.parameter::<u32>(i, &pg)?),
                Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, &pg)?),
                Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, &pg)?),
                Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
                    portal
                        .parameter::<chrono::NaiveDateTime>(i, &pg)?
                        .map(|t| t.and_utc().timestamp_micros()),
                    None,
                ),
                Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
                    portal
                        .parameter::<chrono::DateTime<chrono::FixedOffset>>(i, &pg)?
                        .map(|t| t.timestamp_micros()),
                    Some("+00:00".into()),
                ),
                Type::DATE => ScalarValue::Date32(
                    portal
                        .parameter::<chrono::NaiveDate>(i, &pg)?
                        .and_then(|d| i32::try_from(d.signed_duration_since(chrono::NaiveDate::default()).num_days()).ok()),
                ),
                Type::BOOL_ARRAY => list(portal.parameter::<Vec<Option<bool>>>(i, &pg)?, DataType::Boolean)?,
                Type::INT2_ARRAY => list(portal.parameter::<Vec<Option<i16>>>(i, &pg)?, DataType::Int16)?,
                Type::INT4_ARRAY => list(portal.parameter::<Vec<Option<i32>>>(i, &pg)?, DataType::Int32)?,
                Type::INT8_ARRAY => list(portal.parameter::<Vec<Option<i64>>>(i, &pg)?, DataType::Int64)?,
                Type::OID_ARRAY => list(portal.parameter::<Vec<Option<u32>>>(i, &pg)?, DataType::UInt32)?,
                Type::FLOAT4_ARRAY => list(portal.parameter::<Vec<Option<f32>>>(i, &pg)?, DataType::Float32)?,
                Type::FLOAT8_ARRAY => list(portal.parameter::<Vec<Option<f64>>>(i, &pg)?, DataType::Float64)?,
                Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => list(portal.parameter::<Vec<Option<String>>>(i, &pg)?, DataType::Utf8)?,
                _ => ScalarValue::Utf8(portal.parameter::<String>(i, &Type::VARCHAR)?),
            })
        })
        .collect()
}

/// An array parameter as a list value (NULL stays NULL).
fn list<T>(values: Option<Vec<Option<T>>>, element: DataType) -> PgWireResult<ScalarValue>
where
    ScalarValue: From<Option<T>>,
{
    let Some(values) = values else {
        return ScalarValue::try_from(DataType::new_list(element, true)).map_err(|e| api_error(e.into()));
    };
    let values: Vec<ScalarValue> = values.into_iter().map(ScalarValue::from).collect();
    Ok(ScalarValue::List(ScalarValue::new_list(&values, &element, true)))
}

/// Weir's error as an ErrorResponse: SQLSTATE, message, and for syntax errors the position.
fn error_response(error: &Error, query: &str) -> Response {
    let mut info = ErrorInfo::new("ERROR".to_string(), error.sqlstate().to_string(), error.to_string());
    info.position = syntax_position(&error.to_string(), query).map(|p| p.to_string());
    Response::Error(Box::new(info))
}

/// sqlparser reports "Line: l, Column: c"; Postgres wants a 1-based character offset.
fn syntax_position(message: &str, query: &str) -> Option<usize> {
    let line: usize = message.split("Line: ").nth(1)?.split(',').next()?.trim().parse().ok()?;
    let column: usize = message
        .split("Column: ")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let before: usize = query.split('\n').take(line.saturating_sub(1)).map(|l| l.chars().count() + 1).sum();
    Some(before + column)
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
    {
        if query.trim().trim_matches(';').trim().is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let timer = self.query_timer();
        let mut outputs = Vec::new();
        let result = self
            .cancellable(client, self.session.execute_script(query, |output| outputs.push(output)))
            .await
            .unwrap_or_else(|| Err(Error::canceled()));
        let mut responses = Vec::with_capacity(outputs.len() + 1);
        for output in outputs {
            responses.push(response(output, &Format::UnifiedText)?);
        }
        match result {
            Err(error) => responses.push(error_response(&error, query)),
            // Only comments: Postgres answers EmptyQueryResponse (a health check sends `-- ping`).
            Ok(()) if responses.is_empty() => responses.push(Response::EmptyQuery),
            Ok(()) => {}
        }
        if let Some(last) = responses.last_mut() {
            timer.until_sent(last);
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = String;
    type QueryParser = OneStatement;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(OneStatement)
    }

    /// Describe of a portal that is an SQL cursor (DECLARE): in Postgres a cursor is a portal, and
    /// psycopg's named cursors describe it by name to learn its columns.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.target_type == TARGET_TYPE_BYTE_PORTAL
            && let Some(name) = message.name.as_deref().filter(|n| !n.is_empty())
            && client.portal_store().get_portal(name).is_none()
        {
            let schema = self.session.cursor_schema(name).await.map_err(pg_error)?;
            let response = DescribePortalResponse::new(field_infos(&schema, &Format::UnifiedText));
            return send_describe_response(client, &response).await;
        }
        self._on_describe(client, message).await
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        statement: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let (params, schema) = self.session.describe_sql(&statement.statement).await.map_err(pg_error)?;
        let fields = schema.map_or(Vec::new(), |s| field_infos(&s, &Format::UnifiedBinary));
        Ok(DescribeStatementResponse::new(params.iter().map(pg_type).collect(), fields))
    }

    async fn do_describe_portal<C>(&self, _client: &mut C, portal: &Portal<Self::Statement>) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let (_, schema) = self.session.describe_sql(&portal.statement.statement).await.map_err(pg_error)?;
        Ok(DescribePortalResponse::new(
            schema.map_or(Vec::new(), |s| field_infos(&s, &portal.result_column_format)),
        ))
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Self::Statement>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let sql = &portal.statement.statement;
        if sql.trim().trim_matches(';').trim().is_empty() {
            return Ok(Response::EmptyQuery);
        }
        let timer = self.query_timer();
        let inferred: Vec<Type> = if portal.parameter_len() > 0 {
            self.session
                .describe_sql(sql)
                .await
                .map_err(pg_error)?
                .0
                .iter()
                .map(pg_type)
                .collect()
        } else {
            Vec::new()
        };
        let params = parameter_values(portal, &inferred)?;
        match self
            .cancellable(client, self.session.execute_with_params(sql, params))
            .await
            .unwrap_or_else(|| Err(Error::canceled()))
        {
            Ok(mut outputs) => match outputs.pop() {
                Some(output) => {
                    let mut response = response(output, &portal.result_column_format)?;
                    timer.until_sent(&mut response);
                    Ok(response)
                }
                None => Ok(Response::EmptyQuery),
            },
            Err(error) => Ok(error_response(&error, sql)),
        }
    }
}

/// Parse messages: a prepared statement is one statement, as in Postgres (a string of several would
/// run them all and answer rows after NoData). Syntax errors are reported when the statement is
/// described or run, with their position.
pub struct OneStatement;

#[async_trait]
impl QueryParser for OneStatement {
    type Statement = String;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<String>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        match parse_statements(sql) {
            Ok(statements) if statements.len() > 1 => {
                Err(pg_error(Error::syntax("cannot insert multiple commands into a prepared statement")))
            }
            _ => Ok(Some(sql.to_owned())),
        }
    }

    fn get_parameter_types(&self, _statement: &String) -> PgWireResult<Vec<Type>> {
        Ok(Vec::new())
    }

    fn get_result_schema(&self, _statement: &String, _format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        Ok(Vec::new())
    }
}

/// SCRAM iterations, as Postgres' default.
const SCRAM_ITERATIONS: usize = 4096;

#[async_trait]
impl AuthSource for PasswordFile {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let password = self.password(user).ok_or_else(|| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".to_string(),
                "28P01".to_string(),
                format!("password authentication failed for user \"{user}\""),
            )))
        })?;
        let salt: [u8; 16] = rand::random();
        Ok(Password::new(
            Some(salt.to_vec()),
            gen_salted_password(password, &salt, SCRAM_ITERATIONS),
        ))
    }
}

/// How connections authenticate: every client trusted, or SCRAM-SHA-256 against a password file.
enum AuthMethod {
    /// Connection ids and cancel keys of the server's trusted connections.
    Trust(Arc<RandomPidSecretKeyGenerator>),
    Scram(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

/// A connection's startup: authenticates, and says when it is done (the connection then stops
/// counting against the startup limit and timeout, see `admission`).
struct Startup {
    method: AuthMethod,
    authenticated: watch::Sender<bool>,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + futures::Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        match &self.method {
            AuthMethod::Trust(pids) => {
                // Under trust the startup packet is the whole authentication. Counting the
                // connection as started before pgwire answers it means a client that connects
                // again at once does not find its first connection still starting, and evictable
                // (seen with --max-connections 2 on a loaded machine).
                if let PgWireFrontendMessage::Startup(startup) = &message {
                    self.authenticated.send_replace(true);
                    protocol_negotiation(client, startup).await?;
                    save_startup_parameters_to_metadata(client, startup);
                    let (pid, secret) = pids.generate(client);
                    client.set_pid_and_secret_key(pid, secret);
                    finish_authentication(client, &server_parameters()).await?;
                }
            }
            AuthMethod::Scram(scram) => scram.on_startup(client, message).await?,
        }
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            self.authenticated.send_replace(true);
        }
        Ok(())
    }
}

struct Handlers {
    connection: Arc<Connection>,
    authenticated: watch::Sender<bool>,
    passwords: Option<Arc<PasswordFile>>,
    cancels: Arc<ConnectionManager>,
    pids: Arc<RandomPidSecretKeyGenerator>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.connection.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(pgwire::api::cancel::DefaultCancelHandler::new(self.cancels.clone()))
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.connection.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        let method = match &self.passwords {
            None => AuthMethod::Trust(self.pids.clone()),
            Some(passwords) => {
                let mut scram = ScramAuth::new(passwords.clone());
                scram.set_iterations(SCRAM_ITERATIONS);
                AuthMethod::Scram(Box::new(
                    SASLAuthStartupHandler::new(Arc::new(server_parameters())).with_scram(scram),
                ))
            }
        };
        Arc::new(Startup {
            method,
            authenticated: self.authenticated.clone(),
        })
    }
}

/// Serves the database on `listen` until the process is stopped (Ctrl-C or SIGTERM).
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Connections served at once; more are refused with SQLSTATE 53300.
    pub max_connections: usize,
    /// Of those, connections still in their startup (see `admission`).
    pub max_startup_connections: usize,
    /// Every client is trusted: off a loopback address only on explicit request.
    pub trust_remote: bool,
    /// SCRAM-SHA-256 against these users instead of trust.
    pub passwords: Option<Arc<PasswordFile>>,
    /// PEM certificate chain and private key: clients may then use TLS (sslmode=require).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A FATAL ErrorResponse written by hand: sent before the startup handshake, to refuse a connection.
fn fatal_message(code: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', message)] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&fields);
    out
}

pub async fn serve(db: Arc<Database>, options: ServeOptions) -> Result<()> {
    let listen = options.listen;
    check_listen_address(listen, options.passwords.as_deref(), options.trust_remote, "the Postgres protocol")?;
    let admission = Admission::new(options.max_connections, options.max_startup_connections, admission::STARTUP_TIMEOUT);
    let passwords = options.passwords;
    let cancels = Arc::new(ConnectionManager::new());
    // One generator for the server, so connection ids are unique.
    let pids = Arc::new(RandomPidSecretKeyGenerator::default());
    let tls = match &options.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| Error::invalid(format!("cannot listen on {listen}: {e}")))?;
    let local = listener.local_addr()?;
    // Scripts and tests read this line to learn the port (with --listen 127.0.0.1:0).
    // Not println!: it panics when stdout is a closed pipe (a supervisor that stopped reading).
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "weir listening on {local}");
    let _ = std::io::stdout().flush();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                let open = db.server_metrics().connection_opened();
                let (authenticated, authenticated_rx) = watch::channel(false);
                let handlers = Handlers {
                    connection: Arc::new(Connection::new(Session::new(db.clone()), cancels.clone())),
                    authenticated,
                    passwords: passwords.clone(),
                    cancels: cancels.clone(),
                    pids: pids.clone(),
                };
                let tls = tls.clone();
                let admission = admission.clone();
                tokio::spawn(async move {
                    // Counted open until this task ends, however the connection does.
                    let _open = open;
                    let Some(ticket) = admission.admit(authenticated_rx.clone()).await else {
                        use tokio::io::AsyncWriteExt;
                        let mut socket = socket;
                        let _ = socket.write_all(&fatal_message("53300", "sorry, too many clients already (weir serve --max-connections)")).await;
                        let _ = socket.shutdown().await;
                        return;
                    };
                    match ticket.serve(socket::process_socket(socket, tls, handlers), authenticated_rx).await {
                        Some(Err(e)) => tracing::info!("connection from {peer} ended: {e}"),
                        Some(Ok(())) => {}
                        None => tracing::info!("connection from {peer} dropped: no startup within the timeout, or room was needed"),
                    }
                });
            }
            _ = shutdown_signal() => {
                let _ = writeln!(std::io::stdout(), "weir: shutting down");
                db.shutdown().await;
                return Ok(());
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_positions_count_characters_from_one() {
        assert_eq!(
            syntax_position("syntax error: ... at Line: 1, Column: 8", "CREATE SORCE x"),
            Some(8)
        );
        assert_eq!(syntax_position("at Line: 2, Column: 3", "SELECT 1;\nSELEC 2"), Some(13));
        assert_eq!(syntax_position("no position", "x"), None);
    }
}
