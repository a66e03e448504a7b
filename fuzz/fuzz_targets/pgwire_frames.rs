//! pgwire message decoding (issue 12): the bytes a client sends after TLS negotiation — a startup
//! packet, then tagged messages — pass through Weir's frame check (`CheckedFrames`) into pgwire's
//! decoder, as in `weir::pgwire::socket`. pgwire 0.42 panics on some malformed messages, and reads
//! a body from the connection's buffer without stopping at the frame's end, so a message it reads
//! differently from the protocol would make it take the rest of the frame as the next message.
//! The frame check must pass on only messages that pgwire decodes without a panic and to exactly
//! their end, and must itself never panic.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};
use tokio::io::{AsyncRead, ReadBuf};
use weir::pgwire::frames::CheckedFrames;

/// What the frame check passes on, until it refuses a frame (the connection then ends, 08P01).
fn checked(data: &[u8]) -> Vec<u8> {
    // A byte slice never waits, so a no-op waker drives the reads.
    let mut frames = CheckedFrames::new(data, true);
    let mut cx = Context::from_waker(Waker::noop());
    let mut passed = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut frames).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return passed,
            Poll::Ready(Ok(())) => passed.extend_from_slice(buf.filled()),
            Poll::Ready(Err(_)) => return passed,
            Poll::Pending => unreachable!("a byte slice is always ready"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let passed = checked(data);
    // pgwire's server codec after negotiation: the startup packet first, then tagged messages.
    let mut context = DecodeContext::new(ProtocolVersion::default());
    context.awaiting_frontend_ssl = false;
    let mut at = 0;
    while at < passed.len() {
        let header = usize::from(!context.awaiting_frontend_startup);
        let Some(length) = passed.get(at + header..at + header + 4) else {
            break;
        };
        let end = at + header + u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
        let Some(frame) = passed.get(at..end) else {
            // The end of the input cut this frame: pgwire waits for the rest.
            let _ = PgWireFrontendMessage::decode(&mut BytesMut::from(&passed[at..]), &context);
            break;
        };
        let mut src = BytesMut::from(frame);
        match PgWireFrontendMessage::decode(&mut src, &context) {
            // The server ends the connection after a cancel request or a decoding error.
            Ok(Some(PgWireFrontendMessage::CancelRequest(_))) | Err(_) => break,
            Ok(Some(message)) => assert!(
                src.is_empty(),
                "pgwire read {message:?} and left {} bytes of its frame, which it would take for the next message",
                src.len()
            ),
            Ok(None) => panic!("pgwire did not decode a whole checked frame"),
        }
        context.awaiting_frontend_startup = false;
        at = end;
    }
});
