//! Where a blob is downloaded from (URL, token, a name for messages).

use std::fmt;

use reqwest::Url;

use crate::digest::Sha256Digest;

/// Where a blob is downloaded from: a URL, with the bearer token to send
/// (coordinator blobs) or none (plain `http(s)://` URLs from job specs).
#[derive(Clone)]
pub struct BlobSource {
    pub(super) url: Url,
    pub(super) token: Option<String>,
    pub(super) name: Option<String>,
}

impl BlobSource {
    /// A plain URL, fetched without credentials.
    pub fn new(url: Url) -> Self {
        BlobSource {
            url,
            token: None,
            name: None,
        }
    }

    /// `blob` on the coordinator at `base` (e.g. `https://coord.example/`),
    /// fetched with the worker's `token`.
    pub fn coordinator(
        base: &Url,
        token: impl Into<String>,
        blob: &Sha256Digest,
    ) -> Result<Self, url::ParseError> {
        let path = pictor_protocol::api::paths::blob(blob);
        let url = Url::parse(&format!("{}{path}", base.as_str().trim_end_matches('/')))?;
        Ok(BlobSource {
            url,
            token: Some(token.into()),
            name: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` (and the protocol version header).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Names the blob in errors and logs, e.g. `plugin` or `input "scene.glb"`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub(super) fn label(&self, blob: &Sha256Digest) -> String {
        match &self.name {
            Some(name) => format!("{name} (blob {blob})"),
            None => format!("blob {blob}"),
        }
    }
}

impl fmt::Debug for BlobSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobSource")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("name", &self.name)
            .finish()
    }
}
