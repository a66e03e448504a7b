//! File-system helpers for everything Weir must not lose: atomic replacement (temp file, fsync,
//! rename, fsync of the directory), fsynced buffered writes, and copies or hard links that return
//! the file's size and CRC-32 (checked again when the file is read back).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// `create_dir_all`, with the directory in the error (the path may be the user's, e.g. a
/// checkpoint directory that is a file).
pub fn create_dirs(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::from(e).context(format!("cannot create directory {}", dir.display())))
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file: temp file, fsync,
/// rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::internal(format!("{} has no parent directory", path.display())))?;
    create_dirs(dir)?;
    // A unique temp name: concurrent writers of the same file must not rename each other's temp.
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{sequence}", std::process::id()));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Flushes a buffered file and fsyncs it.
pub fn sync_buffered(writer: BufWriter<File>, path: &Path) -> Result<()> {
    writer
        .into_inner()
        .map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))?
        .sync_all()?;
    Ok(())
}

/// Reads `from` to the end, feeding every chunk to `sink`; returns size and CRC-32.
fn stream_with_crc(from: &Path, mut sink: impl FnMut(&[u8]) -> std::io::Result<()>) -> Result<(u64, u32)> {
    let mut reader = BufReader::new(File::open(from)?);
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok((size, hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
        sink(&buffer[..n])?;
        size += n as u64;
    }
}

/// Copies `from` to `to` (temp file, fsync, rename), returning size and CRC-32.
pub fn copy_with_crc(from: &Path, to: &Path) -> Result<(u64, u32)> {
    let tmp = to.with_extension("part");
    let mut writer = BufWriter::new(File::create(&tmp)?);
    let checked = stream_with_crc(from, |chunk| writer.write_all(chunk))?;
    sync_buffered(writer, &tmp)?;
    std::fs::rename(&tmp, to)?;
    Ok(checked)
}

/// Puts the immutable file `from` at `to` and returns size and CRC-32: a hard link when both are on
/// one file system (state snapshot files are never written again, so sharing the inode is safe and
/// costs no copy), else a copy. Either way the file is fsynced before it gets its final name.
pub fn transfer_with_crc(from: &Path, to: &Path) -> Result<(u64, u32)> {
    let tmp = to.with_extension("part");
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(from, &tmp).is_err() {
        return copy_with_crc(from, to);
    }
    File::open(&tmp)?.sync_all()?;
    let checked = file_crc(&tmp)?;
    std::fs::rename(&tmp, to)?;
    Ok(checked)
}

/// Size and CRC-32 of a file.
pub fn file_crc(path: &Path) -> Result<(u64, u32)> {
    stream_with_crc(path, |_| Ok(()))
}
