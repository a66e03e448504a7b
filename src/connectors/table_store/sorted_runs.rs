//! `SortedRuns`: the rows of one epoch commit of the table store, sorted in memory into runs of
//! bounded size, each written as an SST file; the files and the commit markers are ingested in one
//! atomic ingestion (see the table store's module comment for why not a write batch).

use std::path::PathBuf;

use rocksdb::{IngestExternalFileOptions, SstFileWriter, WriteBatch};

use super::{Markers, SMALL_COMMIT_BYTES, TableStore};
use crate::error::{Error, Result};

/// Where encoded rows go: a write batch (rows written as they arrive) or an epoch's sorted runs.
pub(super) trait KeyValueWrite {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    fn delete(&mut self, key: &[u8]) -> Result<()>;
}

impl KeyValueWrite for WriteBatch {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        WriteBatch::put(self, key, value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        WriteBatch::delete(self, key);
        Ok(())
    }
}

/// The memory a commit's current run is kept in. It is handed from one commit to the next: a
/// large epoch fills it again, and memory already mapped needs no zeroing by the kernel (fresh
/// pages for every commit took a tenth of q5's CPU), nor copies as it grows.
#[derive(Default)]
pub(super) struct RunBuffers {
    /// Keys and values of the current run, back to back.
    bytes: Vec<u8>,
    /// One per put, in arrival order.
    entries: Vec<RunEntry>,
    /// The current run in key order (see `SortedRuns::sort_run`).
    order: Vec<u128>,
}

/// The puts of one epoch commit, in arrival order. They are kept in memory up to `RUN_BYTES`, then
/// sorted by key and written as an SST file (a run); `apply` ingests every run at once.
pub(super) struct SortedRuns<'a> {
    store: &'a TableStore,
    /// Taken from the store for this commit (another commit running at once starts empty).
    bytes: Vec<u8>,
    entries: Vec<RunEntry>,
    order: Vec<u128>,
    /// SST files written so far, oldest first.
    files: Vec<PathBuf>,
    /// A run is written out when its keys and values reach this size.
    run_bytes: usize,
}

impl<'a> SortedRuns<'a> {
    pub(super) fn new(store: &'a TableStore, run_bytes: usize) -> Self {
        let RunBuffers { bytes, entries, order } = store
            .run_buffers
            .lock()
            .map(|mut kept| std::mem::take(&mut *kept))
            .unwrap_or_default();
        SortedRuns {
            store,
            run_bytes,
            bytes,
            entries,
            order,
            files: Vec::new(),
        }
    }

    fn key(&self, entry: &RunEntry) -> &[u8] {
        &self.bytes[entry.start..entry.start + entry.key_len as usize]
    }

    /// The value of a put; `None` for a delete.
    fn value(&self, entry: &RunEntry) -> Option<&[u8]> {
        if entry.value_len == DELETED {
            return None;
        }
        let from = entry.start + entry.key_len as usize;
        Some(&self.bytes[from..from + entry.value_len as usize])
    }

    /// The order of two entries' keys, as bytes: by their prefixes, then (for keys longer than the
    /// prefix only) by the bytes in the buffer.
    fn compare_keys(&self, a: &RunEntry, b: &RunEntry) -> std::cmp::Ordering {
        a.prefix
            .cmp(&b.prefix)
            .then_with(|| match a.key_len.max(b.key_len) as usize <= PREFIX_BYTES {
                true => a.key_len.cmp(&b.key_len),
                false => self.key(a).cmp(self.key(b)),
            })
    }

    /// Fills `order` with the current run's entries in key order, equal keys in arrival order:
    /// each number holds its entry's index in its low 32 bits. Packed keys (short keys differing
    /// in few bytes) are sorted as those numbers; other runs sort their entries in place.
    fn sort_run(&mut self) {
        self.order.clear();
        match PackedKeys::of(&self.entries) {
            Some(packing) => {
                let entries = self.entries.iter().enumerate();
                self.order.extend(entries.map(|(i, entry)| packing.pack(entry, i)));
                self.order.sort_unstable();
            }
            None => {
                let mut entries = std::mem::take(&mut self.entries);
                // `start` grows with arrival.
                entries.sort_unstable_by(|a, b| self.compare_keys(a, b).then_with(|| a.start.cmp(&b.start)));
                self.entries = entries;
                self.order.extend((0..self.entries.len()).map(|i| i as u128));
            }
        }
    }

    /// The entry at `position` of the sorted run.
    fn sorted_entry(&self, position: usize) -> Option<&RunEntry> {
        let packed = self.order.get(position)?;
        self.entries.get(PackedKeys::index(*packed))
    }

    /// Writes the current run as an SST file: keys in order, and of a key put twice only the later
    /// value (an SST file holds each key once). The last run ends with the commit markers.
    fn write_run(&mut self, markers: &Markers) -> Result<()> {
        if self.entries.is_empty() && markers.is_empty() {
            return Ok(());
        }
        self.sort_run();
        let path = self.store.staging_path();
        let mut writer = SstFileWriter::create(&self.store.commit_file_options);
        writer.open(&path)?;
        self.files.push(path);
        for position in 0..self.order.len() {
            let Some(entry) = self.sorted_entry(position) else {
                break;
            };
            // The entries themselves lie in arrival order: fetch them twice as far ahead.
            if let Some(packed) = self.order.get(position + 2 * PREFETCH_AHEAD)
                && let Some(entry) = self.entries.get(PackedKeys::index(*packed))
            {
                prefetch_value(entry);
            }
            if let Some(ahead) = self.sorted_entry(position + PREFETCH_AHEAD) {
                let len = ahead.key_len as usize + self.value(ahead).map_or(0, <[u8]>::len);
                prefetch(&self.bytes[ahead.start..ahead.start + len]);
            }
            let superseded = self
                .sorted_entry(position + 1)
                .is_some_and(|next| self.compare_keys(next, entry).is_eq());
            match self.value(entry) {
                _ if superseded => {}
                Some(value) => writer.put(self.key(entry), value)?,
                None => writer.delete(self.key(entry))?,
            }
        }
        for (key, value) in markers {
            writer.put(key, value)?;
        }
        writer.finish()?;
        self.bytes.clear();
        self.entries.clear();
        Ok(())
    }

    /// Makes every put visible at once, together with the sink subtasks' new commit markers
    /// (their keys sort after every row's, and each is set once).
    pub(super) fn apply(mut self, markers: &Markers) -> Result<()> {
        if self.files.is_empty() && self.bytes.len() < SMALL_COMMIT_BYTES {
            let mut write = WriteBatch::default();
            for entry in &self.entries {
                match self.value(entry) {
                    Some(value) => write.put(self.key(entry), value),
                    None => write.delete(self.key(entry)),
                }
            }
            for (key, value) in markers {
                write.put(key, value);
            }
            return self.store.write(write);
        }
        self.write_run(markers)?;
        let mut ingest = IngestExternalFileOptions::default();
        // The files are ours: RocksDB takes them over by hard links instead of copies.
        ingest.set_move_files(true);
        self.store.db.ingest_external_file_opts(&ingest, self.files.clone())?;
        Ok(())
    }
}

impl KeyValueWrite for SortedRuns<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.push(key, Some(value))
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.push(key, None)
    }
}

impl SortedRuns<'_> {
    /// Adds a put (`Some(value)`) or a delete to the current run.
    fn push(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let stored = value.unwrap_or_default();
        let (key_len, value_len) = (u32::try_from(key.len()), u32::try_from(stored.len()));
        let (Ok(key_len), Ok(value_len)) = (key_len, value_len) else {
            return Err(Error::invalid("a result table row is larger than 4 GiB"));
        };
        if value_len == DELETED {
            return Err(Error::invalid("a result table row is larger than 4 GiB"));
        }
        if self.bytes.capacity() < self.run_bytes {
            // Once, at the size a run reaches: growing by doubling would copy it on the way.
            self.bytes
                .reserve_exact(self.run_bytes + key.len() + stored.len() - self.bytes.len());
        }
        self.entries.push(RunEntry {
            prefix: key_prefix(key),
            start: self.bytes.len(),
            key_len,
            value_len: if value.is_some() { value_len } else { DELETED },
        });
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(stored);
        if self.bytes.len() >= self.run_bytes || self.entries.len() >= MAX_RUN_ENTRIES {
            self.write_run(&Markers::new())?;
        }
        Ok(())
    }
}

/// The `value_len` of a delete's entry (no put has it: such rows are refused).
const DELETED: u32 = u32::MAX;

/// Where one put or delete of a run lies in its bytes.
#[derive(Clone, Copy)]
struct RunEntry {
    /// The key's first 24 bytes as numbers that order like them: a run's keys share their table
    /// prefix and often much of their first column, so comparing only the bytes leaves most of a
    /// sort in memcmp calls.
    prefix: [u64; 3],
    start: usize,
    key_len: u32,
    value_len: u32,
}

/// How many entries ahead `write_run` asks for: enough for the misses to overlap.
const PREFETCH_AHEAD: usize = 16;

/// Asks the CPU to bring `bytes` into the cache before they are read. A run's entries are written
/// in key order, which is random in the run's buffer (64 MiB, beyond the cache): without this each
/// entry waits for its own miss, in turn, inside the SST writer (a third of a commit's CPU in q5).
#[inline]
fn prefetch(bytes: &[u8]) {
    for byte in [bytes.first(), bytes.last()].into_iter().flatten() {
        prefetch_value(byte);
    }
}

/// Asks the CPU to bring the cache line holding `value` in.
#[inline]
fn prefetch_value<T>(value: &T) {
    // SAFETY: a prefetch is a hint: it cannot fault, and it changes nothing the program sees.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

const PREFIX_BYTES: usize = 24;

/// The first 24 bytes of `key`, zero-padded, as big-endian numbers. Keys with equal prefixes
/// must still be compared whole (a shorter key padded with zeros ties with a longer one).
fn key_prefix(key: &[u8]) -> [u64; 3] {
    let mut bytes = [0u8; PREFIX_BYTES];
    let n = key.len().min(PREFIX_BYTES);
    bytes[..n].copy_from_slice(&key[..n]);
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_be_bytes(w)
    };
    [word(0), word(1), word(2)]
}

/// A run's keys as 128-bit numbers that sort like them: the key bytes that differ within the run,
/// then the entry's arrival index (so equal keys keep their order). A result's keys of one run
/// share the table id and the high bytes of their numbers, so a handful of bytes tells them
/// apart; sorting numbers takes a fraction of the time comparing entries does.
struct PackedKeys {
    /// The positions (within the 24-byte prefix) whose bytes differ between keys.
    positions: Vec<usize>,
    /// Whether key lengths differ (the length then follows the bytes).
    with_length: bool,
}

/// The key bytes a packed key holds; the low 32 bits hold the arrival index.
const PACKED_KEY_BYTES: usize = 12;

/// A run ends before its entries' indices outgrow the 32 bits `PackedKeys` keeps for them.
const MAX_RUN_ENTRIES: usize = u32::MAX as usize;

impl PackedKeys {
    /// How to pack these entries' keys: `None` when some key is longer than the prefix or the keys
    /// differ in too many bytes.
    fn of(entries: &[RunEntry]) -> Option<Self> {
        let first = entries.first()?;
        let mut differing = [0u64; 3];
        let mut with_length = false;
        for entry in entries {
            if entry.key_len as usize > PREFIX_BYTES {
                return None;
            }
            for (word, differs) in differing.iter_mut().enumerate() {
                *differs |= entry.prefix[word] ^ first.prefix[word];
            }
            with_length |= entry.key_len != first.key_len;
        }
        let positions: Vec<usize> = (0..PREFIX_BYTES).filter(|p| prefix_byte(&differing, *p) != 0).collect();
        (positions.len() + usize::from(with_length) <= PACKED_KEY_BYTES).then_some(PackedKeys { positions, with_length })
    }

    /// Keys whose differing bytes and (if they differ) lengths are equal are equal; otherwise they
    /// order by those bytes, then by length, as padded prefixes of keys no longer than it do.
    fn pack(&self, entry: &RunEntry, index: usize) -> u128 {
        let mut packed = self
            .positions
            .iter()
            .fold(0u128, |packed, p| packed << 8 | u128::from(prefix_byte(&entry.prefix, *p)));
        if self.with_length {
            // At most PREFIX_BYTES.
            packed = packed << 8 | u128::from(entry.key_len as u8);
        }
        packed << 32 | index as u128
    }

    fn index(packed: u128) -> usize {
        (packed & u128::from(u32::MAX)) as usize
    }
}

/// Byte `position` of a key prefix.
fn prefix_byte(prefix: &[u64; 3], position: usize) -> u8 {
    (prefix[position / 8] >> (56 - 8 * (position % 8))) as u8
}

impl Drop for SortedRuns<'_> {
    /// Removes the files of a commit that failed (after a successful ingestion RocksDB has its own
    /// links) and hands the memory back to the store.
    fn drop(&mut self) {
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
        let mut kept = RunBuffers {
            bytes: std::mem::take(&mut self.bytes),
            entries: std::mem::take(&mut self.entries),
            order: std::mem::take(&mut self.order),
        };
        kept.bytes.clear();
        kept.entries.clear();
        if let Ok(mut store_kept) = self.store.run_buffers.lock()
            && store_kept.bytes.capacity() < kept.bytes.capacity()
        {
            *store_kept = kept;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run sorts its keys as bytes, equal keys in arrival order, whether they are packed into
    /// numbers (short keys differing in few bytes, of one length or several) or compared.
    #[test]
    fn runs_sort_keys_as_bytes_packed_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = TableStore::open(dir.path()).unwrap();
        let mut seed = 7u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let fixed = (0..5000)
            .map(|_| [&[0, 0, 0, 9, 1][..], &(next() % 300).to_be_bytes()].concat())
            .collect::<Vec<_>>();
        let lengths = (0..5000)
            .map(|_| {
                let len = (next() % 6) as usize;
                (0..len).map(|_| (next() % 2) as u8).collect::<Vec<u8>>()
            })
            .collect::<Vec<_>>();
        let wide = (0..5000).map(|_| next().to_be_bytes().repeat(2)).collect::<Vec<_>>();
        let long = (0..5000)
            .map(|_| [&[7u8; 24][..], &[(next() % 3) as u8, (next() % 3) as u8]].concat())
            .collect::<Vec<_>>();
        for (keys, packed) in [(fixed, true), (lengths, true), (wide, false), (long, false)] {
            let mut runs = SortedRuns::new(&store, 16 << 20);
            for (i, key) in keys.iter().enumerate() {
                runs.put(key, &(i as u32).to_be_bytes()).unwrap();
            }
            assert_eq!(PackedKeys::of(&runs.entries).is_some(), packed);
            runs.sort_run();
            let sorted: Vec<(Vec<u8>, Vec<u8>)> = (0..keys.len())
                .filter_map(|position| runs.sorted_entry(position))
                .map(|e| (runs.key(e).to_vec(), runs.value(e).unwrap_or_default().to_vec()))
                .collect();
            let mut expected: Vec<(Vec<u8>, Vec<u8>)> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), (i as u32).to_be_bytes().to_vec()))
                .collect();
            expected.sort();
            assert_eq!(sorted, expected, "packed: {packed}");
        }
    }
}
