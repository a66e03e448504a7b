//! `StateReader`: reads back the little-endian byte layouts operators write into the state backend.
//! Every read checks the length, so a corrupt value is an error that names the operator's state,
//! never a panic.

use crate::error::{Error, Result};

pub struct StateReader<'a> {
    input: &'a [u8],
    /// Whose state this is, for the error ("join state").
    what: &'static str,
}

impl<'a> StateReader<'a> {
    pub fn new(input: &'a [u8], what: &'static str) -> Self {
        StateReader { input, what }
    }

    pub fn corrupt(&self) -> Error {
        Error::internal(format!("corrupt {} in the state backend", self.what))
    }

    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.input.len() < n {
            return Err(self.corrupt());
        }
        let (head, tail) = self.input.split_at(n);
        self.input = tail;
        Ok(head)
    }

    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| self.corrupt())
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.fixed()?))
    }

    /// Bytes written with `put_bytes`: a u32 length, then the bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// The value must end here.
    pub fn finish(self) -> Result<()> {
        if self.input.is_empty() { Ok(()) } else { Err(self.corrupt()) }
    }
}

/// Writes `bytes` as `StateReader::bytes` reads them.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written_and_refuses_short_input() {
        let mut out = vec![7];
        out.extend_from_slice(&(-5i64).to_le_bytes());
        put_bytes(&mut out, b"row");
        let mut reader = StateReader::new(&out, "test state");
        assert_eq!(reader.u8().expect("u8"), 7);
        assert_eq!(reader.i64().expect("i64"), -5);
        assert_eq!(reader.bytes().expect("bytes"), b"row");
        reader.finish().expect("all read");
        let mut short = StateReader::new(&out[..5], "test state");
        short.u8().expect("u8");
        let error = short.i64().expect_err("too short");
        assert!(error.to_string().contains("corrupt test state"), "{error}");
    }
}
