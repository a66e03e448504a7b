//! Where checkpoints and savepoints are kept: a local directory (a path or `file://`) or an S3
//! prefix (`s3://bucket/prefix`). The S3 endpoint, region, credentials and addressing style come
//! from Flink's `s3.*` keys, else from the standard AWS environment variables; they are resolved
//! when a location is parsed, so a job with missing credentials is refused at CREATE JOB rather
//! than failing at its first checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The `s3.*` keys Weir reads (Flink's names; `s3.region` is Weir's).
pub const S3_KEYS: [&str; 6] = [
    "s3.endpoint",
    "s3.region",
    "s3.access-key",
    "s3.secret-key",
    "s3.session-token",
    "s3.path.style.access",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageLocation {
    Local(PathBuf),
    S3(S3Location),
}

/// A prefix in a bucket; `prefix` has no leading or trailing `/` (empty: the bucket's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
    pub config: S3Config,
}

/// How to reach the S3 service of a location.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `None`: AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    /// `bucket` in the path (`http://host/bucket/key`) rather than in the host name; S3-compatible
    /// servers (MinIO, moto, Ceph) usually need it.
    pub path_style: bool,
}

impl std::fmt::Debug for S3Config {
    /// Without the secrets: settings are logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

/// The raw `s3.*` settings of a session or job, read when an `s3://` location is parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options(BTreeMap<String, String>);

impl S3Options {
    /// The `s3.*` keys among a session's or job's settings.
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<Self> {
        let mut options = S3Options::default();
        for (key, value) in settings {
            options.take(key, value)?;
        }
        Ok(options)
    }

    /// Takes `key` if it is one of [`S3_KEYS`]; `false` otherwise.
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool> {
        if !S3_KEYS.contains(&key) {
            return Ok(false);
        }
        if key == "s3.path.style.access" && !matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false") {
            return Err(Error::invalid(format!("'{key}' must be true or false, not '{value}'")));
        }
        self.0.insert(key.to_string(), value.trim().to_string());
        Ok(true)
    }

    pub fn entries(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone()))
    }

    /// The setting, else the first of the environment variables that is set and not empty.
    fn value(&self, key: &str, env: &[&str]) -> Option<String> {
        self.0
            .get(key)
            .cloned()
            .filter(|v| !v.is_empty())
            .or_else(|| env.iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty())))
    }

    fn config(&self, url: &str) -> Result<S3Config> {
        let access_key = self.value("s3.access-key", &["AWS_ACCESS_KEY_ID"]);
        let secret_key = self.value("s3.secret-key", &["AWS_SECRET_ACCESS_KEY"]);
        let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
            return Err(Error::invalid(format!(
                "'{url}' needs S3 credentials: set 's3.access-key' and 's3.secret-key', or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in Weir's environment"
            )));
        };
        let endpoint = self.value("s3.endpoint", &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]);
        if let Some(endpoint) = &endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(Error::invalid(format!(
                "'s3.endpoint' must be an http:// or https:// URL, not '{endpoint}'"
            )));
        }
        // A custom endpoint is almost always an S3-compatible server that wants path-style
        // requests (Flink's Hadoop S3 needs the key set explicitly; most users then set it).
        let path_style = match self.value("s3.path.style.access", &[]) {
            Some(v) => v.eq_ignore_ascii_case("true"),
            None => std::env::var("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").map_or(endpoint.is_some(), |v| v.eq_ignore_ascii_case("false")),
        };
        Ok(S3Config {
            endpoint,
            region: self
                .value("s3.region", &["AWS_REGION", "AWS_DEFAULT_REGION"])
                .unwrap_or_else(|| "us-east-1".to_string()),
            access_key,
            secret_key,
            session_token: self.value("s3.session-token", &["AWS_SESSION_TOKEN"]),
            path_style,
        })
    }
}

impl StorageLocation {
    /// `s3://bucket/prefix`, `file:///path` or a path. `what` names the setting in errors.
    pub fn parse(what: &str, value: &str, s3: &S3Options) -> Result<Self> {
        let text = value.trim();
        if text.is_empty() {
            return Err(Error::invalid(format!("'{what}' must not be empty")));
        }
        if let Some(rest) = strip_scheme(text, "s3") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if !valid_bucket(bucket) {
                return Err(Error::invalid(format!(
                    "'{what}': '{text}' names no valid bucket; write s3://<bucket>/<prefix> (a bucket is 3-63 lowercase letters, digits, '.' and '-')"
                )));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|part| part.is_empty() || part == "." || part == "..") && !prefix.is_empty() {
                return Err(Error::invalid(format!("'{what}': '{text}' has an empty, '.' or '..' path segment")));
            }
            return Ok(StorageLocation::S3(S3Location {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                config: s3.config(text)?,
            }));
        }
        if let Some(path) = strip_scheme(text, "file") {
            return Ok(StorageLocation::Local(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(Error::invalid(format!(
                "'{what}': '{scheme}://' is not supported; use a local path, file:// or s3://"
            )));
        }
        Ok(StorageLocation::Local(PathBuf::from(text)))
    }

    /// The location one level down, named `component` (already spelled as one path entry).
    pub fn join(&self, component: &str) -> StorageLocation {
        match self {
            StorageLocation::Local(path) => StorageLocation::Local(path.join(component)),
            StorageLocation::S3(s3) => StorageLocation::S3(s3.join(component)),
        }
    }

    pub fn local(&self) -> Option<&Path> {
        match self {
            StorageLocation::Local(path) => Some(path),
            StorageLocation::S3(_) => None,
        }
    }
}

impl std::fmt::Display for StorageLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageLocation::Local(path) => write!(f, "{}", path.display()),
            StorageLocation::S3(s3) => write!(f, "{s3}"),
        }
    }
}

impl S3Location {
    pub fn join(&self, component: &str) -> S3Location {
        let prefix = if self.prefix.is_empty() {
            component.to_string()
        } else {
            format!("{}/{component}", self.prefix)
        };
        S3Location { prefix, ..self.clone() }
    }

    /// The key of `name` (a `/`-separated path below this prefix).
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// `rest` of `scheme://rest`, the scheme compared without case.
fn strip_scheme<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
    let (head, rest) = text.split_once("://")?;
    head.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// S3's bucket naming rules (the ones a typo breaks).
fn valid_bucket(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> S3Options {
        let mut options = S3Options::default();
        for (k, v) in pairs {
            assert!(options.take(k, v).expect("valid"));
        }
        options
    }

    #[test]
    fn locations_parse_with_their_errors() {
        let s3 = options(&[
            ("s3.access-key", "a"),
            ("s3.secret-key", "b"),
            ("s3.endpoint", "http://127.0.0.1:9000"),
        ]);
        let parsed = StorageLocation::parse("dir", "s3://my-bucket/ckpt/x/", &s3).expect("parses");
        let StorageLocation::S3(location) = &parsed else {
            panic!("not s3: {parsed:?}")
        };
        assert_eq!((location.bucket.as_str(), location.prefix.as_str()), ("my-bucket", "ckpt/x"));
        assert!(location.config.path_style, "a custom endpoint defaults to path style");
        assert_eq!(parsed.join("job").to_string(), "s3://my-bucket/ckpt/x/job");
        assert_eq!(location.join("chk-1").key("_metadata"), "ckpt/x/chk-1/_metadata");
        assert_eq!(
            StorageLocation::parse("dir", "file:///tmp/x", &s3).expect("file"),
            StorageLocation::Local(PathBuf::from("/tmp/x"))
        );
        assert_eq!(
            StorageLocation::parse("dir", "rel/dir", &s3).expect("path"),
            StorageLocation::Local(PathBuf::from("rel/dir"))
        );
        for (bad, message) in [
            ("s3://", "names no valid bucket"),
            ("s3://My_Bucket/x", "names no valid bucket"),
            ("s3://bucket/a//b", "empty, '.' or '..'"),
            ("s3://bucket/a/../b", "empty, '.' or '..'"),
            ("hdfs://nn/x", "'hdfs://' is not supported"),
            ("  ", "must not be empty"),
        ] {
            let error = StorageLocation::parse("dir", bad, &s3).expect_err(bad).to_string();
            assert!(error.contains(message), "{bad}: {error}");
        }
        let mut bad = S3Options::default();
        assert!(bad.take("s3.path.style.access", "yes").is_err());
        assert!(!bad.take("s3.unknown", "x").expect("not an s3 key"));
    }
}
