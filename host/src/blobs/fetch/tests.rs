//! The fetcher against a loopback server with injected faults.

use super::*;
use crate::blobs::testserver::{Fault, TestServer};
use reqwest::Url;

fn quick() -> FetchOptions {
    FetchOptions {
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..Default::default()
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

struct Setup {
    server: TestServer,
    fetcher: Fetcher,
    dir: tempfile::TempDir,
}

async fn setup(limit: u64, options: FetchOptions) -> Setup {
    let server = TestServer::start(Some("worker-token")).await;
    let dir = tempfile::tempdir().unwrap();
    let fetcher = fetcher_in(dir.path(), limit, options);
    Setup {
        server,
        fetcher,
        dir,
    }
}

fn fetcher_in(root: &Path, limit: u64, options: FetchOptions) -> Fetcher {
    let cache = Arc::new(BlobCache::open(root, limit).unwrap());
    Fetcher::new(
        crate::blobs::http_client("pictor-host-test").unwrap(),
        cache,
        options,
    )
}

const MIB: u64 = 1 << 20;

#[tokio::test]
async fn downloads_verifies_caches_and_hits() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(3 << 20, 1);
    let d = s.server.add(bytes.clone());
    let (sink, rx) = ProgressSink::channel();
    let blob = s
        .fetcher
        .fetch(&s.server.source(&d), d, Some(bytes.len() as u64), &sink)
        .await
        .unwrap();
    assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
    assert_eq!((blob.digest(), blob.size()), (d, bytes.len() as u64));
    assert!(blob.path().starts_with(s.dir.path()));
    let full = FetchProgress {
        bytes_done: 3 << 20,
        bytes_total: 3 << 20,
        blobs_done: 1,
        blobs_total: 1,
    };
    assert_eq!(*rx.borrow(), full, "the last update is always published");
    let served = s.server.served(&d);
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].range, None);
    // Second fetch: from the cache, no request; size unknown is fine.
    let again = s
        .fetcher
        .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
        .await
        .unwrap();
    assert_eq!(again.path(), blob.path());
    assert_eq!(s.server.served(&d).len(), 1);
    let stats = s.fetcher.stats();
    assert_eq!(
        (
            stats.bytes_downloaded,
            stats.cache_hits,
            stats.retries,
            stats.resumes
        ),
        (3 << 20, 1, 0, 0)
    );
    assert!(!s.fetcher.cache().partial_path(&d).exists());
}

#[tokio::test]
async fn connection_cut_mid_body_resumes_with_range() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(2 << 20, 2);
    let d = s.server.add(bytes.clone());
    s.server.fault(&d, Fault::CutAfter(700_000));
    let blob = s
        .fetcher
        .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
        .await
        .unwrap();
    assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
    let served = s.server.served(&d);
    assert_eq!(served.len(), 2);
    assert_eq!(served[1].range.as_deref(), Some("bytes=700000-"));
    assert_eq!(served[1].status, 206);
    let stats = s.fetcher.stats();
    assert_eq!(
        (stats.resumes, stats.retries, stats.digest_mismatches),
        (1, 1, 0)
    );
    assert_eq!(
        stats.bytes_downloaded,
        bytes.len() as u64,
        "no byte downloaded twice"
    );
}

#[tokio::test]
async fn cancelled_fetch_keeps_its_bytes_for_the_next_one() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(2 << 20, 14);
    let d = s.server.add(bytes.clone());
    s.server.fault(&d, Fault::Stall(1_000_000));
    let (source, sink) = (s.server.source(&d), ProgressSink::discard());
    let first = tokio::time::timeout(
        Duration::from_millis(500),
        s.fetcher.fetch(&source, d, None, &sink),
    )
    .await;
    assert!(first.is_err(), "the stalled fetch is cancelled");
    let blob = s.fetcher.fetch(&source, d, None, &sink).await.unwrap();
    assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
    let served = s.server.served(&d);
    let range = served[1].range.as_deref().unwrap();
    let offset: u64 = range
        .strip_prefix("bytes=")
        .unwrap()
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(
        offset > 0 && offset <= 1_000_000,
        "resumed from what the cancelled fetch wrote: {range}"
    );
    assert_eq!(
        (
            s.fetcher.stats().resumes,
            s.fetcher.stats().digest_mismatches
        ),
        (1, 0)
    );
}

#[tokio::test]
async fn partial_left_by_a_previous_run_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(None).await;
    let bytes = data(1 << 20, 3);
    let d = server.add(bytes.clone());
    let source = BlobSource::new(server.url(&d));
    {
        // A run that dies after 400 000 bytes (one attempt allowed).
        server.fault(&d, Fault::CutAfter(400_000));
        let fetcher = fetcher_in(
            dir.path(),
            64 * MIB,
            FetchOptions {
                max_attempts: 1,
                ..quick()
            },
        );
        let err = fetcher
            .fetch(&source, d, None, &ProgressSink::discard())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, FetchError::Transport { attempts: 1, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains(&d.to_string())
                && err.to_string().contains(source.url().as_str())
        );
    }
    assert_eq!(
        std::fs::metadata(dir.path().join(format!("partial/{d}.part")))
            .unwrap()
            .len(),
        400_000
    );
    let fetcher = fetcher_in(dir.path(), 64 * MIB, quick());
    assert_eq!(fetcher.cache().usage().partial_bytes, 400_000);
    let (sink, _rx) = ProgressSink::channel();
    let blob = fetcher
        .fetch(&source, d, Some(1 << 20), &sink)
        .await
        .unwrap();
    assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
    assert_eq!(
        server.served(&d).last().unwrap().range.as_deref(),
        Some("bytes=400000-")
    );
    let stats = fetcher.stats();
    assert_eq!(
        (stats.resumes, stats.bytes_downloaded),
        (1, (1 << 20) - 400_000)
    );
    assert_eq!(
        sink.snapshot().bytes_done,
        1 << 20,
        "resumed bytes count as done once"
    );
    assert_eq!(fetcher.cache().usage().partial_bytes, 0);
}

#[tokio::test]
async fn server_ignoring_range_restarts_from_zero() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(1 << 20, 4);
    let d = s.server.add(bytes.clone());
    std::fs::write(s.fetcher.cache().partial_path(&d), &bytes[..300_000]).unwrap();
    s.server.fault(&d, Fault::IgnoreRange);
    let blob = s
        .fetcher
        .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
        .await
        .unwrap();
    assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
    let served = s.server.served(&d);
    assert_eq!((served.len(), served[0].status), (1, 200));
    assert_eq!(served[0].range.as_deref(), Some("bytes=300000-"));
    assert_eq!(
        (
            s.fetcher.stats().resumes,
            s.fetcher.stats().bytes_downloaded
        ),
        (0, 1 << 20)
    );
}

#[tokio::test]
async fn complete_partial_gets_416_and_verifies() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(100_000, 5);
    let d = s.server.add(bytes.clone());
    std::fs::write(s.fetcher.cache().partial_path(&d), &bytes).unwrap();
    let blob = s
        .fetcher
        .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
        .await
        .unwrap();
    assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
    assert_eq!(s.server.served(&d)[0].status, 416);
    assert_eq!(s.fetcher.stats().bytes_downloaded, 0);
}

#[tokio::test]
async fn stale_partial_that_does_not_match_is_redone_from_scratch() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(500_000, 6);
    let d = s.server.add(bytes.clone());
    std::fs::write(s.fetcher.cache().partial_path(&d), vec![0u8; 100_000]).unwrap();
    let blob = s
        .fetcher
        .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
        .await
        .unwrap();
    assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
    let ranges: Vec<_> = s.server.served(&d).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [Some("bytes=100000-".to_string()), None]);
    assert_eq!(s.fetcher.stats().digest_mismatches, 1);
}

#[tokio::test]
async fn corrupted_once_is_redownloaded() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(1 << 20, 7);
    let d = s.server.add(bytes.clone());
    s.server.fault(&d, Fault::Corrupt);
    let blob = s
        .fetcher
        .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
        .await
        .unwrap();
    assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
    assert_eq!(s.server.served(&d).len(), 2);
    assert_eq!(s.fetcher.stats().digest_mismatches, 1);
}

#[tokio::test]
async fn always_corrupt_is_a_clear_digest_mismatch() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(200_000, 8);
    let d = s.server.add(bytes.clone());
    s.server.always(&d, Fault::Corrupt);
    let source = s.server.source(&d).named("input \"scene.glb\"");
    let err = s
        .fetcher
        .fetch(&source, d, None, &ProgressSink::discard())
        .await
        .err()
        .unwrap();
    let FetchError::DigestMismatch {
        expected, actual, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*expected, d);
    let mut corrupt = bytes.clone();
    corrupt[bytes.len() / 2] ^= 0xff;
    assert_eq!(*actual, Sha256Digest::of(&corrupt));
    let text = err.to_string();
    for needle in [
        &d.to_string(),
        &actual.to_string(),
        source.url().as_str(),
        "input \"scene.glb\"",
        "sha256 mismatch",
    ] {
        assert!(text.contains(needle), "{text} lacks {needle}");
    }
    assert_eq!(
        s.server.served(&d).len(),
        3,
        "first try and two retries from scratch"
    );
    assert_eq!(s.fetcher.stats().digest_mismatches, 3);
    assert!(!s.fetcher.cache().contains(&d));
    assert!(
        !s.fetcher.cache().partial_path(&d).exists(),
        "no corrupt partial kept"
    );
    let usage = s.fetcher.cache().usage();
    assert_eq!(
        (usage.blob_bytes, usage.partial_bytes, usage.reserved_bytes),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn wrong_size_aborts_early() {
    let s = setup(
        64 * MIB,
        FetchOptions {
            mismatch_retries: 0,
            ..quick()
        },
    )
    .await;
    let bytes = data(300_000, 9);
    let d = s.server.add(bytes.clone());
    let err = s
        .fetcher
        .fetch(
            &s.server.source(&d),
            d,
            Some(1000),
            &ProgressSink::discard(),
        )
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            FetchError::SizeMismatch {
                expected: 1000,
                actual: 300_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&d.to_string()), "{err}");
    assert_eq!(
        s.fetcher.stats().bytes_downloaded,
        0,
        "refused from Content-Length, before the body"
    );
}

#[tokio::test]
async fn not_found_and_unauthorized_fail_fast_with_clear_errors() {
    let s = setup(64 * MIB, quick()).await;
    let missing = Sha256Digest::of(b"missing");
    let source = s.server.source(&missing);
    let err = s
        .fetcher
        .fetch(&source, missing, None, &ProgressSink::discard())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, FetchError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("blob {missing} not found at {}", source.url())
    );
    assert_eq!(s.server.served(&missing).len(), 1, "no retry");

    let d = s.server.add(data(1000, 10));
    let wrong = BlobSource::new(s.server.url(&d)).with_token("stolen");
    let err = s
        .fetcher
        .fetch(&wrong, d, None, &ProgressSink::discard())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, FetchError::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("the coordinator refused the worker token (wrong worker token)"),
        "{text}"
    );
    assert!(
        text.contains(&d.to_string()) && text.contains(wrong.url().as_str()),
        "{text}"
    );
    assert_eq!(s.server.served(&d).len(), 1, "no retry");
    assert_eq!(s.fetcher.stats().retries, 0);
}

#[tokio::test]
async fn server_errors_are_retried_and_other_4xx_are_not() {
    let s = setup(
        64 * MIB,
        FetchOptions {
            max_attempts: 3,
            ..quick()
        },
    )
    .await;
    let bytes = data(10_000, 11);
    let d = s.server.add(bytes.clone());
    s.server.fault(&d, Fault::Status(503));
    s.server.fault(&d, Fault::Status(429));
    let blob = s
        .fetcher
        .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
        .await
        .unwrap();
    assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
    assert_eq!(s.server.served(&d).len(), 3);
    assert_eq!(s.fetcher.stats().retries, 2);

    let e = s.server.add(data(10_000, 12));
    s.server.always(&e, Fault::Status(500));
    let err = s
        .fetcher
        .fetch(&s.server.source(&e), e, None, &ProgressSink::discard())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, FetchError::Status { status: 500, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("injected fault"),
        "the ErrorBody message: {err}"
    );
    assert_eq!(s.server.served(&e).len(), 3, "max_attempts");

    let f = s.server.add(data(10_000, 13));
    s.server.always(&f, Fault::Status(403));
    let err = s
        .fetcher
        .fetch(&s.server.source(&f), f, None, &ProgressSink::discard())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, FetchError::Status { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(s.server.served(&f).len(), 1);
}

#[tokio::test]
async fn fetch_all_downloads_in_parallel_and_returns_in_order() {
    let s = setup(
        64 * MIB,
        FetchOptions {
            parallel: 3,
            ..quick()
        },
    )
    .await;
    let blobs: Vec<Vec<u8>> = (0..7)
        .map(|i| data(100_000 + i * 50_000, 20 + i as u8))
        .collect();
    let items: Vec<FetchItem> = blobs
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let d = s.server.add(bytes.clone());
            s.server.fault(&d, Fault::Delay(Duration::from_millis(20)));
            // Half with sizes known up front, half learnt from the reply.
            FetchItem {
                source: s.server.source(&d),
                blob: d,
                size: (i % 2 == 0).then_some(bytes.len() as u64),
            }
        })
        .collect();
    let total: u64 = blobs.iter().map(|b| b.len() as u64).sum();
    let (sink, rx) = ProgressSink::channel();
    let fetched = s.fetcher.fetch_all(items.clone(), &sink).await.unwrap();
    assert_eq!(fetched.len(), blobs.len());
    for ((blob, item), bytes) in fetched.iter().zip(&items).zip(&blobs) {
        assert_eq!(blob.digest(), item.blob);
        assert_eq!(&std::fs::read(blob.path()).unwrap(), bytes);
        assert_eq!(s.server.served(&item.blob).len(), 1);
    }
    let max = s.server.max_in_flight();
    assert!(
        (1..=3).contains(&max),
        "at most `parallel` requests at once, got {max}"
    );
    let full = FetchProgress {
        bytes_done: total,
        bytes_total: total,
        blobs_done: 7,
        blobs_total: 7,
    };
    assert_eq!(*rx.borrow(), full);
    assert_eq!(
        s.fetcher.cache().usage().pinned_bytes,
        total,
        "all pinned while held"
    );
    drop(fetched);
    assert_eq!(s.fetcher.cache().usage().pinned_bytes, 0);
}

#[tokio::test]
async fn fetch_all_returns_the_first_error() {
    let s = setup(64 * MIB, quick()).await;
    let good = s.server.add(data(1000, 30));
    let missing = Sha256Digest::of(b"nope");
    let items = [good, missing].map(|d| FetchItem {
        source: s.server.source(&d),
        blob: d,
        size: None,
    });
    let err = s
        .fetcher
        .fetch_all(items, &ProgressSink::discard())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, FetchError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn concurrent_fetches_of_one_blob_download_once() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(1 << 20, 40);
    let d = s.server.add(bytes.clone());
    // Slow enough that both fetches are under way together.
    s.server.fault(&d, Fault::Delay(Duration::from_millis(50)));
    let source = s.server.source(&d);
    let sink = ProgressSink::discard();
    let (a, b) = tokio::join!(
        s.fetcher.fetch(&source, d, None, &sink),
        s.fetcher.fetch(&source, d, None, &sink)
    );
    assert_eq!(a.unwrap().path(), b.unwrap().path());
    assert_eq!(s.server.served(&d).len(), 1, "one download");
    let stats = s.fetcher.stats();
    assert_eq!((stats.cache_hits, stats.bytes_downloaded), (1, 1 << 20));
}

#[tokio::test]
async fn cache_limits_surface_before_any_request() {
    let s = setup(MIB, quick()).await;
    let d = s.server.add(data(1000, 50));
    let err = s
        .fetcher
        .fetch(
            &s.server.source(&d),
            d,
            Some(2 * MIB),
            &ProgressSink::discard(),
        )
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            FetchError::Cache {
                source: CacheError::TooLarge { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("larger than the whole download cache (1 MiB)"),
        "{err}"
    );
    assert!(s.server.served(&d).is_empty());

    // The size is learnt from the reply: refused there, before the body.
    let big = s.server.add(data(1_100_000, 51));
    let err = s
        .fetcher
        .fetch(&s.server.source(&big), big, None, &ProgressSink::discard())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            FetchError::Cache {
                source: CacheError::TooLarge { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.fetcher.stats().bytes_downloaded, 0);
}

#[tokio::test]
async fn blob_corrupted_in_the_cache_folder_is_caught_and_refetched() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(100_000, 60);
    let d = s.server.add(bytes.clone());
    let path = s
        .fetcher
        .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
        .await
        .unwrap()
        .path()
        .to_path_buf();
    std::fs::write(&path, vec![1u8; bytes.len()]).unwrap();
    // A restart: blobs found on open are re-hashed on first use.
    let fetcher = fetcher_in(s.dir.path(), 64 * MIB, quick());
    let blob = fetcher
        .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
        .await
        .unwrap();
    assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
    assert_eq!(s.server.served(&d).len(), 2);
    // Verified now: the next hit does not hash or download.
    drop(
        fetcher
            .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
            .await
            .unwrap(),
    );
    assert_eq!(fetcher.stats().cache_hits, 1);
}

#[tokio::test]
async fn unverified_download_for_benchmarks_writes_the_bytes() {
    let s = setup(64 * MIB, quick()).await;
    let bytes = data(1 << 20, 70);
    let d = s.server.add(bytes.clone());
    let dest = s.dir.path().join("plain");
    let n = s
        .fetcher
        .download_unverified(&s.server.source(&d), &dest)
        .await
        .unwrap();
    assert_eq!(
        (n, std::fs::read(&dest).unwrap()),
        (bytes.len() as u64, bytes)
    );
}

/// The worker spawns fetches on the multi-threaded runtime.
#[test]
fn fetch_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    let dir = tempfile::tempdir().unwrap();
    let fetcher = fetcher_in(dir.path(), MIB, quick());
    let (source, sink) = (
        BlobSource::new(Url::parse("http://127.0.0.1:1/").unwrap()),
        ProgressSink::discard(),
    );
    let d = Sha256Digest::of(b"");
    assert_send(fetcher.fetch(&source, d, None, &sink));
    assert_send(fetcher.fetch_all(Vec::new(), &sink));
    assert_send(fetcher.download_unverified(&source, dir.path()));
}

#[test]
fn content_range_parses() {
    assert_eq!(
        parse_content_range("bytes 100-999/1000"),
        Some((100, Some(1000)))
    );
    assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
    assert_eq!(parse_content_range("bytes */1000"), None);
    assert_eq!(parse_content_range("items 1-2/3"), None);
}

#[test]
fn backoff_grows_is_capped_and_honours_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher_in(dir.path(), 1, FetchOptions::default());
    for failures in 1..=10 {
        let d = f.backoff(failures, None);
        let nominal =
            (Duration::from_millis(200) * 2u32.pow(failures - 1)).min(Duration::from_secs(10));
        assert!(
            d >= nominal / 2 && d <= nominal,
            "{failures}: {d:?} vs {nominal:?}"
        );
    }
    assert!(f.backoff(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
    assert_eq!(
        f.backoff(1, Some(Duration::from_secs(3600))),
        Duration::from_secs(10)
    );
}

#[test]
fn source_debug_hides_the_token() {
    let base = Url::parse("https://coord.example/").unwrap();
    let d = Sha256Digest::of(b"x");
    let source = BlobSource::coordinator(&base, "secret-token", &d).unwrap();
    assert_eq!(
        source.url().as_str(),
        format!("https://coord.example/api/v1/blobs/{d}")
    );
    assert!(!format!("{source:?}").contains("secret-token"));
}
