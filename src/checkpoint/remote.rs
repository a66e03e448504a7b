//! `RemoteDir`: an S3 prefix used as a directory of checkpoint files, with blocking calls (the
//! checkpoint layer does its file work on blocking threads). Requests run on a small runtime of
//! their own, so a call works from any thread. Every file is read once as it goes up or comes
//! down, giving its size and CRC-32 for the manifest. Large files go up in parts, several at a
//! time; `object_store` retries failed requests with backoff, bounded so that a store that is down
//! fails the checkpoint rather than stalling it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use crate::error::{Error, Result};
use crate::fs::sync_buffered;
use crate::settings::location::S3Location;

/// Files up to this size go up in one request; larger ones in parts of this size.
const PART_SIZE: usize = 8 << 20;
/// Parts of one file, and files of one upload, in flight at once.
const CONCURRENCY: usize = 4;

/// The runtime the requests run on (never dropped: it serves every job of the process).
fn io_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("weir-object-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::internal(format!("cannot start the object storage runtime: {e}")))
}

/// Runs `work` on the I/O runtime and waits for it, from any thread.
fn block_on<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> Result<T> {
    let task = io_runtime()?.spawn(work);
    futures::executor::block_on(task).map_err(|e| Error::internal(format!("object storage request failed: {e}")))
}

#[derive(Clone)]
pub struct RemoteDir {
    store: Arc<AmazonS3>,
    location: S3Location,
}

impl std::fmt::Debug for RemoteDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteDir({})", self.location)
    }
}

impl RemoteDir {
    pub fn open(location: &S3Location) -> Result<Self> {
        let config = &location.config;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret_key)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: 5,
                retry_timeout: Duration::from_secs(30),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120))
                    .with_allow_http(config.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        let store = builder.build().map_err(|e| Error::invalid(format!("cannot use {location}: {e}")))?;
        Ok(RemoteDir {
            store: Arc::new(store),
            location: location.clone(),
        })
    }

    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// The directory one level down.
    pub fn join(&self, component: &str) -> RemoteDir {
        RemoteDir {
            store: self.store.clone(),
            location: self.location.join(component),
        }
    }

    fn key(&self, name: &str) -> ObjectPath {
        ObjectPath::from(self.location.key(name))
    }

    fn failed(&self, what: &str, name: &str, e: impl std::fmt::Display) -> Error {
        Error::internal(format!("{what} {}/{name}: {e}", self.location))
    }

    /// Checks that the bucket answers with these credentials (a LIST of at most one page).
    pub fn probe(&self) -> Result<()> {
        let (store, prefix) = (self.store.clone(), self.key(""));
        block_on(async move { store.list_with_delimiter(Some(&prefix)).await })?
            .map(|_| ())
            .map_err(|e| Error::invalid(format!("cannot reach {}: {e}", self.location)))
    }

    /// Uploads local files (`(file, name)`), several at a time; returns each one's size and CRC-32.
    pub fn upload_all(&self, files: Vec<(PathBuf, String)>) -> Result<Vec<(u64, u32)>> {
        let dir = self.clone();
        block_on(async move {
            futures::stream::iter(files.into_iter().map(|(file, name)| {
                let dir = dir.clone();
                async move { dir.upload(&file, &name).await }
            }))
            .buffered(CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await
        })?
    }

    async fn upload(&self, file: &Path, name: &str) -> Result<(u64, u32)> {
        let key = self.key(name);
        let mut reader = std::fs::File::open(file).map_err(|e| Error::from(e).context(format!("reading {}", file.display())))?;
        let size = reader.metadata()?.len();
        let mut hasher = crc32fast::Hasher::new();
        let mut next_part = || -> Result<Bytes> {
            let mut part = Vec::with_capacity(PART_SIZE);
            (&mut reader).take(PART_SIZE as u64).read_to_end(&mut part)?;
            hasher.update(&part);
            Ok(Bytes::from(part))
        };
        if size <= PART_SIZE as u64 {
            let body = next_part()?;
            let written = body.len() as u64;
            self.store
                .put(&key, PutPayload::from_bytes(body))
                .await
                .map_err(|e| self.failed("cannot upload", name, e))?;
            return Ok((written, hasher.finalize()));
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.failed("cannot start the upload of", name, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut written = 0u64;
        loop {
            let part = match next_part() {
                Ok(part) => part,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            if part.is_empty() {
                break;
            }
            written += part.len() as u64;
            if let Err(e) = writer.wait_for_capacity(CONCURRENCY).await {
                return Err(self.failed("cannot upload", name, e));
            }
            writer.put(part);
        }
        writer.finish().await.map_err(|e| self.failed("cannot upload", name, e))?;
        Ok((written, hasher.finalize()))
    }

    /// Writes `bytes` as `name` only if there is no object of that name yet.
    pub fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let (store, key) = (self.store.clone(), self.key(name));
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        block_on(async move { store.put_opts(&key, PutPayload::from(bytes), options).await })?
            .map(|_| ())
            .map_err(|e| self.failed("cannot write", name, e))
    }

    /// The object's bytes; `None` if it does not exist.
    pub fn get(&self, name: &str) -> Result<Option<Bytes>> {
        let (store, key) = (self.store.clone(), self.key(name));
        let got = block_on(async move {
            match store.get(&key).await {
                Ok(result) => result.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(|e| self.failed("cannot read", name, e))
    }

    /// Downloads `name` to `to` (temp file, fsync, rename); returns size and CRC-32.
    pub fn download(&self, name: &str, to: &Path) -> Result<(u64, u32)> {
        if let Some(parent) = to.parent() {
            crate::fs::create_dirs(parent)?;
        }
        let tmp = to.with_extension("download");
        let (store, key, target) = (self.store.clone(), self.key(name), tmp.clone());
        let checked = block_on(async move {
            let mut writer = std::io::BufWriter::new(std::fs::File::create(&target)?);
            let mut hasher = crc32fast::Hasher::new();
            let mut size = 0u64;
            let mut stream = store.get(&key).await.map_err(|e| Error::internal(e.to_string()))?.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| Error::internal(e.to_string()))?;
                hasher.update(&chunk);
                writer.write_all(&chunk)?;
                size += chunk.len() as u64;
            }
            sync_buffered(writer, &target)?;
            Ok::<_, Error>((size, hasher.finalize()))
        })?;
        let checked = checked.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.failed("cannot download", name, e)
        })?;
        std::fs::rename(&tmp, to)?;
        Ok(checked)
    }

    /// The names of the "directories" right below `under` (`""`: this one).
    pub fn list_dirs(&self, under: &str) -> Result<Vec<String>> {
        let (store, key) = (self.store.clone(), self.key(under));
        let listed =
            block_on(async move { store.list_with_delimiter(Some(&key)).await })?.map_err(|e| self.failed("cannot list", under, e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Every object below `under`, as names relative to this directory.
    pub fn list_files(&self, under: &str) -> Result<Vec<String>> {
        let (store, key) = (self.store.clone(), self.key(under));
        let listed = block_on(async move { store.list(Some(&key)).try_collect::<Vec<_>>().await })?
            .map_err(|e| self.failed("cannot list", under, e))?;
        // Listed keys come percent-encoded as object_store spells them (a job name's `%XX`
        // becomes `%25XX`); the names below the prefix are Weir's own and need no encoding.
        let base = self.key("");
        let base = if base.as_ref().is_empty() {
            String::new()
        } else {
            format!("{}/", base.as_ref())
        };
        Ok(listed
            .into_iter()
            .filter_map(|meta| meta.location.as_ref().strip_prefix(base.as_str()).map(str::to_string))
            .collect())
    }

    /// Deletes the named objects (a missing one is no error).
    pub fn delete(&self, names: Vec<String>) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let keys: Vec<ObjectPath> = names.iter().map(|n| self.key(n)).collect();
        block_on(async move {
            let keys = futures::stream::iter(keys.into_iter().map(Ok)).boxed();
            store.delete_stream(keys).try_for_each(|_| async { Ok(()) }).await
        })?
        .or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(()),
            e => Err(e),
        })
        .map_err(|e| self.failed("cannot delete below", "", e))
    }

    /// Deletes every object below `under`; never a whole bucket.
    pub fn delete_all(&self, under: &str) -> Result<()> {
        if self.location.prefix.is_empty() && under.is_empty() {
            return Err(Error::internal(format!("refusing to delete every object of {}", self.location)));
        }
        let names = self.list_files(under)?;
        self.delete(names)
    }

    /// Copies object `name` to `to` (another directory of the same store), server side.
    pub fn copy_to(&self, name: &str, to: &RemoteDir, to_name: &str) -> Result<()> {
        let (store, from, target) = (self.store.clone(), self.key(name), to.key(to_name));
        block_on(async move { store.copy(&from, &target).await })?.map_err(|e| self.failed("cannot copy", name, e))
    }
}
