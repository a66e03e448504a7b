//! One client connection, start to end: pgwire's TLS negotiation, then every message through
//! [`CheckedFrames`] into pgwire's handlers. This is pgwire's `process_socket` with the frame
//! check in front of its decoder; the startup timeout lives in `admission`.

use std::io;

use ::pgwire::api::ErrorHandler;
use ::pgwire::api::{ClientInfo, PgWireConnectionState, PgWireServerHandlers};
use ::pgwire::error::{ErrorInfo, PgWireError};
use ::pgwire::messages::PgWireFrontendMessage;
use ::pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use futures::StreamExt;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use crate::pgwire::frames::CheckedFrames;

/// Serves one connection with `handlers`.
pub async fn process_socket<H: PgWireServerHandlers>(
    tcp: TcpStream,
    tls: Option<::pgwire::tokio::TlsAcceptor>,
    handlers: H,
) -> io::Result<()> {
    let Some(negotiated) = negotiate_tls(tcp, tls).await? else {
        // A direct TLS connection without a certificate configured.
        return Ok(());
    };
    let parts = negotiated.into_parts();
    // What pgwire read while negotiating is the start of the startup packet: checked too.
    let io = CheckedFrames::with_buffered(parts.io, parts.read_buf.to_vec());
    let mut checked = FramedParts::new::<::pgwire::messages::PgWireBackendMessage>(io, parts.codec);
    checked.write_buf = parts.write_buf;
    let mut socket = Framed::from_parts(checked);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let on_error = handlers.error_handler();
    loop {
        let message = match socket.next().await {
            Some(Ok(message)) => message,
            Some(Err(PgWireError::IoError(e))) if e.kind() == io::ErrorKind::InvalidData => {
                // Postgres answers a malformed message with 08P01 and ends the session.
                let error = PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".into(), "08P01".into(), e.to_string())));
                let _ = process_error(&mut socket, error, false).await;
                return Ok(());
            }
            Some(Err(e)) => return Err(io::Error::other(e.to_string())),
            None => return Ok(()),
        };
        // A Terminate ends the connection (some clients wait for the server to close it).
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let is_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let is_cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        if let Err(mut e) = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await
        {
            on_error.on_error(&socket, &mut e);
            let fatal = e.is_fatal();
            process_error(&mut socket, e, is_extended_query).await?;
            if fatal {
                return Ok(());
            }
        }
        if is_cancel_request {
            return Ok(());
        }
    }
}
