//! `CheckedFrames`: the client's byte stream (after TLS), passed on to pgwire's decoder one whole,
//! well-formed message at a time. pgwire 0.42 trusts lengths and counts inside a message (a Parse
//! of length 4, a CopyData of length 0 panic in its decoder), and reads a message of any declared
//! length into memory. Here every frame is checked first, as Postgres' backend does:
//! - the length is at least 4 and at most [`MAX_MESSAGE_BYTES`] (startup packets: 10,000, as
//!   Postgres' `MAX_STARTUP_PACKET_LENGTH`), so a client cannot make the server buffer 1 GiB;
//! - the body holds what its type says (strings end, counts fit the rest), see [`check_body`].
//!
//! A bad frame fails the read with `InvalidData`; the connection answers 08P01 and closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest message a client may send: a statement, a Bind with its parameters, a CopyData row.
pub const MAX_MESSAGE_BYTES: usize = 32 << 20;

/// The longest startup packet (Postgres' `MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP_BYTES: usize = 10_000;

pub struct CheckedFrames<S> {
    inner: S,
    /// Bytes read from `inner` and not yet passed on: the start of an incomplete frame.
    pending: Vec<u8>,
    /// Checked bytes not yet passed on (`pending[..ready]`).
    ready: usize,
    /// The next frame is the startup packet (or a cancel request): no type byte.
    untagged_next: bool,
    failed: Option<String>,
}

impl<S> CheckedFrames<S> {
    /// `startup`: the stream is at the startup packet.
    pub fn new(inner: S, startup: bool) -> Self {
        CheckedFrames {
            inner,
            pending: Vec::new(),
            ready: 0,
            untagged_next: startup,
            failed: None,
        }
    }

    /// A stream at the startup packet, of which `buffered` was read already.
    pub fn with_buffered(inner: S, buffered: Vec<u8>) -> Self {
        let mut frames = CheckedFrames::new(inner, true);
        frames.pending = buffered;
        if let Err(reason) = frames.check_pending() {
            frames.failed = Some(reason);
        }
        frames
    }

    /// Checks the complete frames at the front of `pending[ready..]`, moving `ready` past them.
    fn check_pending(&mut self) -> Result<(), String> {
        loop {
            let rest = &self.pending[self.ready..];
            let header = if self.untagged_next { 4 } else { 5 };
            if rest.len() < header {
                return Ok(());
            }
            let tag = (!self.untagged_next).then_some(rest[0]);
            let length_at = header - 4;
            let length = u32::from_be_bytes([rest[length_at], rest[length_at + 1], rest[length_at + 2], rest[length_at + 3]]) as usize;
            let (min, max) = match tag {
                None => (8, MAX_STARTUP_BYTES),
                Some(_) => (4, MAX_MESSAGE_BYTES),
            };
            if length < min || length > max {
                return Err(match tag {
                    Some(tag) if length > max => format!(
                        "message '{}' of {length} bytes is longer than the limit of {max} bytes",
                        tag.escape_ascii()
                    ),
                    Some(tag) => format!("invalid length {length} of message '{}'", tag.escape_ascii()),
                    None => format!("invalid startup packet length {length}"),
                });
            }
            let total = length_at + length;
            if rest.len() < total {
                return Ok(());
            }
            match tag {
                Some(tag) => check_body(tag, &rest[header..total]).map_err(|e| format!("invalid message '{}': {e}", tag.escape_ascii()))?,
                None => check_startup(&rest[header..total])?,
            }
            // After the startup packet come tagged messages; a cancel request ends the connection.
            self.untagged_next = false;
            self.ready += total;
        }
    }
}

/// A body reader that fails instead of panicking.
struct Body<'a>(&'a [u8]);

impl Body<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!("{n} more bytes expected, {} left", self.0.len()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn count(&mut self) -> Result<usize, String> {
        usize::try_from(self.i16()?).map_err(|_| "negative count".to_string())
    }
    fn cstring(&mut self) -> Result<(), String> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or("string without its terminating zero byte")?;
        self.0 = &self.0[end + 1..];
        Ok(())
    }
    fn end(&self) -> Result<(), String> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(format!("{n} bytes after the end")),
        }
    }
}

/// The code a cancel request has in place of a protocol version.
const CANCEL_REQUEST_CODE: u32 = 80877102;

/// Whether a startup packet (after its length) holds what the protocol says: protocol 3.x, then
/// name and value strings, then a zero byte that is the packet's last (Postgres refuses any other
/// layout; pgwire stops at the first empty name and would read the rest as the next message). Or
/// a cancel request: process id and a key of 4 to 256 bytes.
pub fn check_startup(body: &[u8]) -> Result<(), String> {
    let mut b = Body(body);
    let version = b.i32()? as u32;
    if version == CANCEL_REQUEST_CODE {
        b.i32()?;
        return match b.0.len() {
            4..=256 => Ok(()),
            n => Err(format!("invalid cancel request: a key of {n} bytes")),
        };
    }
    let (major, minor) = (version >> 16, version & 0xffff);
    if major != 3 {
        return Err(format!("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.2"));
    }
    loop {
        match b.0 {
            [0] => return Ok(()),
            // No terminator, or one with bytes after it.
            [] | [0, ..] => return Err("invalid startup packet layout: expected terminator as last byte".into()),
            _ => {
                b.cstring()?;
                b.cstring()?;
            }
        }
    }
}

/// Whether the body of a frontend message of type `tag` holds what the protocol says.
pub fn check_body(tag: u8, body: &[u8]) -> Result<(), String> {
    let mut b = Body(body);
    match tag {
        // Query, CopyFail
        b'Q' | b'f' => b.cstring()?,
        // Parse: name, query, parameter types
        b'P' => {
            b.cstring()?;
            b.cstring()?;
            let n = b.count()?;
            b.take(4 * n)?;
        }
        // Bind: portal, statement, parameter formats, parameters, result formats
        b'B' => {
            b.cstring()?;
            b.cstring()?;
            let formats = b.count()?;
            b.take(2 * formats)?;
            for _ in 0..b.count()? {
                let length = b.i32()?;
                if length >= 0 {
                    b.take(length as usize)?;
                } else if length != -1 {
                    return Err(format!("parameter length {length}"));
                }
            }
            let results = b.count()?;
            b.take(2 * results)?;
        }
        // Execute: portal, row limit
        b'E' => {
            b.cstring()?;
            b.i32()?;
        }
        // Describe, Close: 'S' or 'P', then the name
        b'D' | b'C' => {
            let kind = b.take(1)?[0];
            if kind != b'S' && kind != b'P' {
                return Err(format!("'{}' is neither 'S' nor 'P'", kind.escape_ascii()));
            }
            b.cstring()?;
        }
        // Flush, Sync, CopyDone, Terminate
        b'H' | b'S' | b'c' | b'X' => {}
        // CopyData and the authentication responses ('p': password, SASL) carry bytes whose shape
        // depends on the state; pgwire reads them without fixed-size fields.
        b'd' | b'p' => return Ok(()),
        // FunctionCall and anything else: Postgres rejects them, so does pgwire.
        other => return Err(format!("unknown message type '{}'", other.escape_ascii())),
    }
    b.end()
}

impl<S: AsyncRead + Unpin> AsyncRead for CheckedFrames<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if let Some(reason) = &this.failed {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, reason.clone())));
            }
            if this.ready > 0 {
                let n = this.ready.min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // End of stream: pass on what is left so the decoder sees a truncated frame.
                    let n = this.pending.len().min(buf.remaining());
                    buf.put_slice(&this.pending[..n]);
                    this.pending.drain(..n);
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => {
                    this.pending.extend_from_slice(read.filled());
                    if let Err(reason) = this.check_pending() {
                        this.failed = Some(reason);
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CheckedFrames<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn bodies_are_checked_without_panics() {
        assert!(check_body(b'Q', b"SELECT 1\0").is_ok());
        assert!(check_body(b'Q', b"SELECT 1").is_err());
        assert!(check_body(b'P', b"\0SELECT $1\0\0\x01\0\0\0\x17").is_ok());
        assert!(check_body(b'P', b"\0SELECT $1\0\0\x05\0\0\0\x17").is_err());
        assert!(check_body(b'B', b"\0\0\0\0\0\x01\0\0\0\x02hi\0\0").is_ok());
        assert!(check_body(b'B', b"\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0").is_err());
        assert!(check_body(b'E', b"\0\0\0\0\0").is_ok());
        assert!(check_body(b'D', b"X\0").is_err());
        for tag in [b'P', b'B', b'E', b'D', b'C', b'Q', b'f'] {
            assert!(check_body(tag, b"").is_err(), "{}", tag as char);
        }
        // Every prefix of valid bodies, and random bytes, fail cleanly or pass.
        let mut seed = 7u64;
        for tag in b"QPBEDCHScXdpfF" {
            for len in 0..64 {
                let body: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (seed >> 59) as u8
                    })
                    .collect();
                let _ = check_body(*tag, &body);
            }
        }
    }

    #[test]
    fn startup_packets_are_checked() {
        let startup = |params: &[u8]| [&196608u32.to_be_bytes()[..], params].concat();
        assert!(check_startup(&startup(b"user\0weir\0database\0weir\0\0")).is_ok());
        assert!(check_startup(&startup(b"user\0\0\0")).is_ok(), "an empty value");
        assert!(check_startup(&startup(b"\0")).is_ok(), "no parameters");
        // Found by the pgwire_frames fuzz target: bytes after the terminator became the next message.
        assert!(check_startup(&startup(b"user\0weir\0\0P\0\0\0\x04")).is_err());
        assert!(check_startup(&startup(b"user\0weir\0")).is_err(), "no terminator");
        assert!(check_startup(&startup(b"user\0weir")).is_err());
        assert!(check_startup(&startup(b"user\0")).is_err(), "a name without a value");
        assert!(
            check_startup(&[&80877103u32.to_be_bytes()[..], b"\0"].concat()).is_err(),
            "SSLRequest after TLS negotiation"
        );
        let cancel = |key: usize| [&80877102u32.to_be_bytes()[..], &[0; 4], &vec![7; key]].concat();
        assert!(check_startup(&cancel(4)).is_ok());
        assert!(check_startup(&cancel(256)).is_ok());
        assert!(check_startup(&cancel(3)).is_err());
        assert!(check_startup(&cancel(257)).is_err());
    }

    #[tokio::test]
    async fn good_frames_pass_bad_ones_fail_the_read() {
        use tokio::io::AsyncReadExt;
        let mut startup = 9u32.to_be_bytes().to_vec();
        startup.extend_from_slice(&196608u32.to_be_bytes());
        startup.push(0);
        let mut input = startup.clone();
        input.extend(frame(b'Q', b"SELECT 1\0"));
        input.extend(frame(b'S', b""));
        let mut out = Vec::new();
        CheckedFrames::new(&input[..], true).read_to_end(&mut out).await.expect("read");
        assert_eq!(out, input);

        for bad in [
            frame(b'P', b""),
            b"E\0\0\0\x02".to_vec(),
            frame(b'D', b"Q\0"),
            b"Q\x7f\xff\xff\xff".to_vec(),
        ] {
            let mut input = startup.clone();
            input.extend(bad);
            let error = CheckedFrames::new(&input[..], true)
                .read_to_end(&mut Vec::new())
                .await
                .expect_err("bad frame");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        }
        // The declared length is refused before the body arrives.
        let mut input = startup;
        input.extend(b"Q\x40\0\0\0");
        let error = CheckedFrames::new(&input[..], true)
            .read_to_end(&mut Vec::new())
            .await
            .expect_err("too long");
        assert!(error.to_string().contains("longer than the limit"), "{error}");
    }
}
