//! The verified data pipeline: blobs downloaded by sha256 into a
//! content-addressed cache, verified while they stream, resumable.
//!
//! - [`cache`]: the cache folder ([`BlobCache`]) with its byte limit,
//!   LRU eviction and pins ([`PinnedBlob`]) for blobs a job is using;
//! - [`fetch`]: the downloader ([`Fetcher`]): streaming sha256, HTTP
//!   `Range` resume, retries with backoff, one download per digest at a
//!   time, several digests in parallel, progress for the status line.

pub mod cache;

pub use cache::{BlobCache, CacheError, CacheUsage, PinGuard, PinnedBlob};
