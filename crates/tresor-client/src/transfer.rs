//! Raw transfers: bodies that are not JSON and may be large (a snapshot). A download hands the
//! body on chunk by chunk as it arrives; an upload streams a file as the request body
//! (`application/octet-stream`) and reports the bytes sent. Neither is retried: a streamed body
//! cannot be sent twice, and a half-written download cannot be taken back.

use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use reqwest::header::CONTENT_TYPE;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{ApiError, ClientError};
use crate::request::{Request, Response};

/// How much of a file one frame of an upload carries.
const CHUNK: usize = 256 * 1024;

/// Called with (bytes so far, total if known).
pub type Progress = Box<dyn FnMut(u64, Option<u64>) + Send + Sync>;

/// A request body read from a file in chunks, reporting the bytes sent so far.
pub struct FileBody {
    file: std::fs::File,
    sent: u64,
    len: u64,
    progress: Progress,
}

impl FileBody {
    /// Streams `file` (of `len` bytes), calling `progress` after each chunk.
    pub fn new(file: std::fs::File, len: u64, progress: Progress) -> FileBody {
        FileBody {
            file,
            sent: 0,
            len,
            progress,
        }
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        // A local file: reading it in place is as quick as handing it to a blocking thread.
        let mut buf = vec![0u8; CHUNK];
        match this.file.read(&mut buf) {
            Ok(0) => Poll::Ready(None),
            Ok(n) => {
                buf.truncate(n);
                this.sent += n as u64;
                (this.progress)(this.sent, Some(this.len));
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len.saturating_sub(self.sent))
    }
}

impl Client {
    /// Sends `req` once with `body` as its raw body (`application/octet-stream`), under the
    /// configured timeout; statuses of 400 and above become [`ApiError`]s.
    pub async fn upload(&self, req: &Request, body: FileBody) -> Result<Response, ClientError> {
        let url = self.url(&req.path, &req.query);
        let rb = self
            .builder(req, &url)?
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap(body));
        let run = async {
            let resp = rb
                .send()
                .await
                .map_err(|e| self.transport_error(req, &url, &e))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let final_url = resp.url().to_string();
            let body = resp
                .bytes()
                .await
                .map_err(|e| self.transport_error(req, &url, &e))?;
            Ok(Response {
                status,
                headers,
                body: body.to_vec(),
                method: req.method.as_str().to_string(),
                url: final_url,
            })
        };
        let resp = self.bounded(req, &url, run).await?;
        if resp.status >= 400 {
            return Err(ApiError::from_response(&resp).into());
        }
        Ok(resp)
    }

    /// Sends `req` once and hands the body of a successful answer to `sink` chunk by chunk as
    /// it arrives, with `progress` after each; returns the bytes received. An error status is
    /// an [`ApiError`] and nothing reaches `sink`.
    pub async fn download(
        &self,
        req: &Request,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<u64, ClientError> {
        let url = self.url(&req.path, &req.query);
        let rb = self.builder(req, &url)?;
        let run = async {
            let mut resp = rb
                .send()
                .await
                .map_err(|e| self.transport_error(req, &url, &e))?;
            let status = resp.status().as_u16();
            if status >= 400 {
                let headers = resp.headers().clone();
                let body = resp.bytes().await.unwrap_or_default();
                return Err(ApiError::from_response(&Response {
                    status,
                    headers,
                    body: body.to_vec(),
                    method: req.method.as_str().to_string(),
                    url: url.to_string(),
                })
                .into());
            }
            let total = resp.content_length();
            let mut got = 0u64;
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| self.transport_error(req, &url, &e))?
            {
                sink(&chunk).map_err(|e| ClientError::Transport {
                    method: req.method.as_str().to_string(),
                    url: url.to_string(),
                    message: format!("writing the response body: {e}"),
                })?;
                got += chunk.len() as u64;
                progress(got, total);
            }
            Ok(got)
        };
        self.bounded(req, &url, run).await
    }

    /// Runs `f` under the configured timeout (none when it is zero).
    async fn bounded<T>(
        &self,
        req: &Request,
        url: &reqwest::Url,
        f: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let timeout = self.config().timeout;
        if timeout.is_zero() {
            return f.await;
        }
        tokio::time::timeout_at(Instant::now() + timeout, f)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Transport {
                    method: req.method.as_str().to_string(),
                    url: url.to_string(),
                    message: "context deadline exceeded".to_string(),
                })
            })
    }
}
