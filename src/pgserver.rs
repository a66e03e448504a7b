//! `weir serve`: the Postgres wire protocol (pgwire) over `Session`. One session per connection;
//! jobs belong to the database, so they outlive the connection that created them. This first cut
//! speaks the simple query protocol (psql, and any driver's simple mode); the extended protocol,
//! catalogs for `\d`, authentication beyond trust and TLS are issue 5's remaining work.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::stream;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::format::rows_text;
use crate::session::{Database, Output, Session};

/// One connection: its own session over the shared database.
pub struct Connection {
    session: Session,
}

impl NoopStartupHandler for Connection {}

/// The Postgres type a column is sent as.
fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 | DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Interval(_) => Type::INTERVAL,
        _ => Type::VARCHAR,
    }
}

/// A cell as Postgres text: timestamps with a space, booleans as t/f.
fn pg_text(data_type: &DataType, text: String) -> String {
    match data_type {
        DataType::Timestamp(_, _) => text.replacen('T', " ", 1),
        DataType::Boolean => {
            if text == "true" {
                "t".into()
            } else {
                "f".into()
            }
        }
        _ => text,
    }
}

fn rows_response(schema: &SchemaRef, batches: &[RecordBatch]) -> PgWireResult<Response> {
    let fields: Vec<FieldInfo> = schema
        .fields()
        .iter()
        .map(|f| FieldInfo::new(f.name().clone(), None, None, pg_type(f.data_type()), FieldFormat::Text))
        .collect();
    let fields = Arc::new(fields);
    let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
    let rows = rows_text(batches).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let mut encoded = Vec::with_capacity(rows.len());
    for row in rows {
        let mut encoder = DataRowEncoder::new(fields.clone());
        for (cell, data_type) in row.into_iter().zip(&types) {
            encoder.encode_field(&cell.map(|c| pg_text(data_type, c)))?;
        }
        encoded.push(Ok(encoder.take_row()));
    }
    Ok(Response::Query(QueryResponse::new(fields, stream::iter(encoded))))
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
    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
    {
        if query.trim().trim_matches(';').trim().is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut outputs = Vec::new();
        let result = self.session.execute_script(query, |output| outputs.push(output)).await;
        let mut responses = Vec::with_capacity(outputs.len() + 1);
        for output in outputs {
            responses.push(match output {
                Output::Rows { schema, batches } => rows_response(&schema, &batches)?,
                Output::Done { tag } => match tag.as_str() {
                    "BEGIN" => Response::TransactionStart(Tag::new("BEGIN")),
                    "COMMIT" | "ROLLBACK" => Response::TransactionEnd(Tag::new(&tag)),
                    _ => Response::Execution(Tag::new(&tag)),
                },
            });
        }
        if let Err(error) = result {
            responses.push(error_response(&error, query));
        }
        Ok(responses)
    }
}

struct Handlers {
    connection: Arc<Connection>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.connection.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.connection.clone()
    }
}

/// Serves the database on `listen` until the process is stopped (Ctrl-C or SIGTERM).
pub async fn serve(db: Arc<Database>, listen: SocketAddr) -> Result<()> {
    if !listen.ip().is_loopback() {
        return Err(Error::invalid(format!(
            "refusing to listen on {listen} without authentication; only loopback addresses are allowed until passwords are supported"
        )));
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| Error::invalid(format!("cannot listen on {listen}: {e}")))?;
    let local = listener.local_addr()?;
    // Scripts and tests read this line to learn the port (with --listen 127.0.0.1:0).
    println!("weir listening on {local}");
    use std::io::Write;
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
                let handlers = Handlers { connection: Arc::new(Connection { session: Session::new(db.clone()) }) };
                tokio::spawn(async move {
                    if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                        tracing::info!("connection from {peer} ended: {e}");
                    }
                });
            }
            _ = shutdown_signal() => {
                println!("weir: shutting down");
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
