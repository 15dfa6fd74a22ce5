//! Blobs: streamed downloads that resume with `Range` after a break or a stall, existence
//! checks, cross-repository mounts and uploads (distribution-spec "Pulling blobs",
//! "Pushing blobs", "Mounting a blob from another repository").

use crate::auth::Scope;
use crate::client::{
    endpoint_target, expect_success, status_error, Client, Patience, Progress, Req,
};
use crate::config::Endpoint;
use crate::digest::Digest;
use crate::error::{chain, Error, Target};
use crate::reference::Reference;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use reqwest::header::{
    HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE,
};
use reqwest::{Method, Response, StatusCode};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A blob's bytes as they arrive. Not verified: the caller hashes them (it knows whether it
/// started at offset 0). Ends with an error if more than the expected size arrives, or if
/// the download keeps failing after the retries.
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>,
}

impl Stream for BlobStream {
    type Item = Result<Bytes, Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobStream")
    }
}

/// What [`Client::push_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushedBlob {
    /// The registry already had it; nothing was sent.
    Existed,
    Uploaded,
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The state of a download between chunks.
struct Download {
    client: Client,
    endpoint: Endpoint,
    path: String,
    /// The full URL, for messages.
    url: String,
    target: Target,
    expected: u64,
    /// Bytes delivered so far, counted from the blob's start.
    pos: u64,
    body: Option<Body>,
    /// Bytes still to drop from the current body: the server ignored Range.
    skip: u64,
    /// Failures since the last byte arrived.
    failures: u32,
}

/// How a body read went wrong.
enum Break {
    Stall,
    Error(String),
    ShortEof,
}

impl Download {
    /// GET from `pos` (with Range past 0) and note how much of the answer to skip.
    async fn open(&mut self) -> Result<(), Error> {
        let mut headers = HeaderMap::new();
        if self.pos > 0 {
            let v = HeaderValue::from_str(&format!("bytes={}-", self.pos))
                .map_err(|e| protocol(&self.target, e.to_string()))?;
            headers.insert(RANGE, v);
        }
        let resp = self
            .client
            .send(Req {
                method: Method::GET,
                endpoint: &self.endpoint,
                path: &self.path,
                headers,
                body: None,
                scope: Scope::pull(&self.endpoint.repository),
                target: &self.target,
                retry: true,
                patience: Patience::Head,
            })
            .await?;
        let resp = expect_success(resp, &self.target).await?;
        self.skip = match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let start = content_range_start(&resp);
                if start != Some(self.pos) {
                    return Err(protocol(
                        &self.target,
                        format!(
                            "asked for bytes from {} and got a range starting at {start:?}",
                            self.pos
                        ),
                    ));
                }
                0
            }
            _ => {
                if self.pos > 0 {
                    tracing::debug!(target = %self.target, pos = self.pos, "registry ignored Range; skipping what we have");
                }
                self.pos
            }
        };
        self.body = Some(Box::pin(resp.bytes_stream()));
        Ok(())
    }

    /// The next chunk, resuming as needed; `None` at the expected end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        let stall = self.client.config().stall_timeout;
        loop {
            if self.body.is_none() {
                // A resumed blob that was already whole (a pull killed between the last
                // byte and the commit): nothing to ask for, and a Range from its end is
                // one a registry must refuse (416).
                if self.pos >= self.expected {
                    return Ok(None);
                }
                self.open().await?;
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            let failure = match tokio::time::timeout(stall, body.next()).await {
                Ok(Some(Ok(mut chunk))) => {
                    if self.skip > 0 {
                        let n = self.skip.min(chunk.len() as u64);
                        let _ = chunk.split_to(n as usize);
                        self.skip -= n;
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    if self.pos + chunk.len() as u64 > self.expected {
                        return Err(Error::BlobTooLarge {
                            target: self.target.clone(),
                            expected: self.expected,
                        });
                    }
                    self.pos += chunk.len() as u64;
                    self.failures = 0;
                    return Ok(Some(chunk));
                }
                Ok(None) if self.pos >= self.expected => return Ok(None),
                Ok(None) => Break::ShortEof,
                Ok(Some(Err(e))) if e.is_timeout() => Break::Stall,
                Ok(Some(Err(e))) => Break::Error(chain(&e)),
                Err(_) => Break::Stall,
            };
            self.body = None;
            self.failures += 1;
            let retries = self.client.config().retries;
            if self.failures > retries {
                return Err(match failure {
                    Break::Stall => Error::Stalled {
                        target: self.target.clone(),
                        received: self.pos,
                        timeout: stall,
                        attempts: self.failures,
                    },
                    Break::Error(detail) => Error::Connect {
                        target: self.target.clone(),
                        url: self.url.clone(),
                        attempts: self.failures,
                        detail: format!("after {} bytes: {detail}", self.pos),
                    },
                    Break::ShortEof => Error::Connect {
                        target: self.target.clone(),
                        url: self.url.clone(),
                        attempts: self.failures,
                        detail: format!(
                            "the body ended after {} of {} bytes",
                            self.pos, self.expected
                        ),
                    },
                });
            }
            let why = match &failure {
                Break::Stall => "stalled".to_string(),
                Break::Error(d) => d.clone(),
                Break::ShortEof => "ended early".to_string(),
            };
            tracing::info!(target = %self.target, pos = self.pos, attempt = self.failures, %why, "blob download broke; resuming");
            tokio::time::sleep(self.client.backoff(self.failures)).await;
        }
    }
}

fn protocol(target: &Target, reason: String) -> Error {
    Error::Protocol {
        target: target.clone(),
        reason,
    }
}

/// `bytes START-END/TOTAL` → START.
fn content_range_start(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

fn blob_target(ep: &Endpoint, digest: &Digest, spec: &'static str) -> Target {
    endpoint_target(ep, format!("blob {digest}"), spec)
}

impl Client {
    /// The blob `digest` in `r`'s repository as a stream starting at `offset`, from the
    /// first endpoint (mirrors, then the origin) that has it. Redirects are followed; the
    /// registry's Authorization header stays with the registry. A body that breaks or
    /// stalls resumes with `Range: bytes=N-` (skipping N bytes if the server answers 200),
    /// up to the retry limit; more than `expected_size` bytes is an error.
    pub async fn get_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        expected_size: u64,
        offset: u64,
    ) -> Result<BlobStream, Error> {
        let download = self
            .on_pull_endpoints(r, "blob", |endpoint| async move {
                let target = blob_target(&endpoint, digest, "pulling blobs");
                let path = format!("/v2/{}/blobs/{digest}", endpoint.repository);
                let url = self.resolve(&endpoint, &path, &target)?.to_string();
                let mut d = Download {
                    client: self.clone(),
                    endpoint,
                    path,
                    url,
                    target,
                    expected: expected_size,
                    pos: offset,
                    body: None,
                    skip: 0,
                    failures: 0,
                };
                if offset < expected_size {
                    d.open().await?;
                }
                Ok(d)
            })
            .await?;
        let stream = futures_util::stream::try_unfold(download, |mut d| async move {
            Ok(d.next_chunk().await?.map(|chunk| (chunk, d)))
        });
        Ok(BlobStream {
            inner: Box::pin(stream),
        })
    }

    /// HEAD the blob: its size if `r`'s repository has it.
    pub async fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<Option<u64>, Error> {
        let ep = self.origin(r)?;
        self.blob_exists_at(&ep, digest, Scope::pull(&ep.repository))
            .await
    }

    async fn blob_exists_at(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        scope: Scope,
    ) -> Result<Option<u64>, Error> {
        let target = blob_target(ep, digest, "checking if content exists in the registry");
        let path = format!("/v2/{}/blobs/{digest}", ep.repository);
        let resp = self
            .send(Req {
                method: Method::HEAD,
                endpoint: ep,
                path: &path,
                headers: HeaderMap::new(),
                body: None,
                scope,
                target: &target,
                retry: true,
                patience: Patience::Head,
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = expect_success(resp, &target).await?;
        Ok(Some(
            resp.headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        ))
    }

    pub(crate) fn origin(&self, r: &Reference) -> Result<Endpoint, Error> {
        self.endpoints(r, false)?
            .pop()
            .ok_or_else(|| Error::Blocked {
                registry: r.name(),
                source_file: "the configuration (no endpoints)".into(),
            })
    }

    /// Asks the registry to link `digest` from `from_repository` (same registry) into `r`'s
    /// repository. `Ok(false)` when it declines (202): then upload it.
    pub async fn mount_blob(
        &self,
        r: &Reference,
        from_repository: &str,
        digest: &Digest,
    ) -> Result<bool, Error> {
        let ep = self.origin(r)?;
        let target = blob_target(&ep, digest, "mounting a blob from another repository");
        let mut url = self.resolve(
            &ep,
            &format!("/v2/{}/blobs/uploads/", ep.repository),
            &target,
        )?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from_repository);
        let empty = || Ok(reqwest::Body::from(Vec::new()));
        let resp = self
            .send(Req {
                method: Method::POST,
                endpoint: &ep,
                path: url.as_str(),
                headers: zero_length(),
                body: Some(&empty),
                scope: Scope::push(&ep.repository).and(Scope::pull(from_repository)),
                target: &target,
                retry: true,
                patience: Patience::Head,
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry opened an upload session instead; close it rather than
                // leave it to expire.
                if let Some(loc) = location_of(&resp) {
                    self.cancel_upload(&ep, &loc, &target).await;
                }
                Ok(false)
            }
            _ => Err(status_error(resp, &target).await),
        }
    }

    async fn cancel_upload(&self, ep: &Endpoint, location: &str, target: &Target) {
        let result = self
            .send(Req {
                method: Method::DELETE,
                endpoint: ep,
                path: location,
                headers: HeaderMap::new(),
                body: None,
                scope: Scope::push(&ep.repository),
                target,
                retry: false,
                patience: Patience::Head,
            })
            .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "cancelling an upload session failed");
        }
    }

    /// Uploads the blob in the file at `path` (which must hash to `digest` and hold `size`
    /// bytes) unless the repository already has it: POST for a session, then one streamed
    /// PUT, or PATCH chunks when configured or when the registry refuses the single PUT
    /// as too large (413).
    pub async fn push_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<PushedBlob, Error> {
        let ep = self.origin(r)?;
        if self
            .blob_exists_at(&ep, digest, Scope::push(&ep.repository))
            .await?
            .is_some()
        {
            tracing::debug!(%digest, repository = %ep.repository, "blob already in the registry");
            return Ok(PushedBlob::Existed);
        }
        let target = endpoint_target(&ep, format!("upload {digest}"), "pushing blobs");
        let mut chunk = self.config().chunk_size;
        loop {
            let location = self.start_upload(&ep, &target).await?;
            let result = match chunk {
                None => {
                    self.put_whole(&ep, &target, &location, digest, size, path)
                        .await
                }
                Some(c) => {
                    self.put_chunks(&ep, &target, location, digest, size, path, c.max(1))
                        .await
                }
            };
            match result {
                Err(e) if chunk.is_none() && e.status() == Some(413) => {
                    tracing::info!(%digest, "registry refused a single PUT as too large; uploading in chunks");
                    chunk = Some(FALLBACK_CHUNK);
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(PushedBlob::Uploaded),
            }
        }
    }

    async fn start_upload(&self, ep: &Endpoint, target: &Target) -> Result<String, Error> {
        let empty = || Ok(reqwest::Body::from(Vec::new()));
        let resp = self
            .send(Req {
                method: Method::POST,
                endpoint: ep,
                path: &format!("/v2/{}/blobs/uploads/", ep.repository),
                headers: zero_length(),
                body: Some(&empty),
                scope: Scope::push(&ep.repository),
                target,
                retry: true,
                patience: Patience::Head,
            })
            .await?;
        let resp = expect_success(resp, target).await?;
        location_of(&resp)
            .ok_or_else(|| protocol(target, "an upload session without a Location".into()))
    }

    async fn put_whole(
        &self,
        ep: &Endpoint,
        target: &Target,
        location: &str,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<(), Error> {
        let mut url = self.resolve(ep, location, target)?;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let file = path.to_path_buf();
        let progress = Progress::new();
        let p = progress.clone();
        let body = move || file_body(&file, 0, size, &p);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
        let resp = self
            .send(Req {
                method: Method::PUT,
                endpoint: ep,
                path: url.as_str(),
                headers,
                body: Some(&body),
                scope: Scope::push(&ep.repository),
                target,
                retry: false,
                patience: Patience::Upload(&progress),
            })
            .await?;
        finish_upload(resp, target, digest).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_chunks(
        &self,
        ep: &Endpoint,
        target: &Target,
        mut location: String,
        digest: &Digest,
        size: u64,
        path: &Path,
        chunk: u64,
    ) -> Result<(), Error> {
        let mut start = 0;
        while start < size {
            let len = chunk.min(size - start);
            let file = path.to_path_buf();
            let progress = Progress::new();
            let p = progress.clone();
            let body = move || file_body(&file, start, len, &p);
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
            let range = HeaderValue::from_str(&format!("{}-{}", start, start + len - 1))
                .map_err(|e| protocol(target, e.to_string()))?;
            headers.insert(CONTENT_RANGE, range);
            let resp = self
                .send(Req {
                    method: Method::PATCH,
                    endpoint: ep,
                    path: &location,
                    headers,
                    body: Some(&body),
                    scope: Scope::push(&ep.repository),
                    target,
                    retry: false,
                    patience: Patience::Upload(&progress),
                })
                .await?;
            let resp = expect_success(resp, target).await?;
            location = location_of(&resp).unwrap_or(location);
            start += len;
        }
        let mut url = self.resolve(ep, &location, target)?;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let empty = || Ok(reqwest::Body::from(Vec::new()));
        let resp = self
            .send(Req {
                method: Method::PUT,
                endpoint: ep,
                path: url.as_str(),
                headers: zero_length(),
                body: Some(&empty),
                scope: Scope::push(&ep.repository),
                target,
                retry: false,
                patience: Patience::Head,
            })
            .await?;
        finish_upload(resp, target, digest).await
    }
}

/// Chunk size after a 413 to a single PUT.
const FALLBACK_CHUNK: u64 = 16 << 20;

async fn finish_upload(resp: Response, target: &Target, digest: &Digest) -> Result<(), Error> {
    let resp = expect_success(resp, target).await?;
    if let Some(said) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok())
    {
        if &said != digest && said.algorithm() == digest.algorithm() {
            return Err(Error::DigestMismatch {
                target: target.clone(),
                expected: digest.clone(),
                actual: said,
                from_header: true,
            });
        }
    }
    Ok(())
}

fn zero_length() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_LENGTH, HeaderValue::from(0u64));
    h
}

fn location_of(resp: &Response) -> Option<String> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `len` bytes of the file from `start`, streamed.
fn file_body(
    path: &Path,
    start: u64,
    len: u64,
    progress: &Progress,
) -> Result<reqwest::Body, Error> {
    use std::io::{Seek as _, SeekFrom};
    let read_err = |source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    f.seek(SeekFrom::Start(start)).map_err(read_err)?;
    let file = tokio::fs::File::from_std(f);
    let limited = tokio::io::AsyncReadExt::take(file, len);
    let progress = progress.clone();
    let chunks = tokio_util::io::ReaderStream::with_capacity(limited, 256 << 10)
        .inspect(move |_| progress.touch());
    Ok(reqwest::Body::wrap_stream(chunks))
}
