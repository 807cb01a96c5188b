//! The one conformance suite every [`BlobDriver`] passes (the file driver in unit
//! tests, S3 against a real SeaweedFS in `tests/blob_drivers.rs`). Panics on failure.

use bytes::Bytes;
use futures::StreamExt;
use moor_api::Digest;

use super::{BlobDriver, DriverError};

/// Deterministic bytes (no two chunks alike), `len` of them.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed as u64) as u8
        })
        .collect()
}

async fn collect(driver: &dyn BlobDriver, digest: &Digest, a: u64, b: u64) -> Option<Vec<u8>> {
    let mut stream = driver.read_range(digest, a..b).await.expect("read_range")?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("a chunk"));
    }
    Some(out)
}

/// Stages `bytes` in chunks of `chunk` bytes and commits them as `digest`.
async fn put(
    driver: &dyn BlobDriver,
    bytes: &[u8],
    chunk: usize,
    digest: &Digest,
    size: Option<u64>,
) -> Result<(), DriverError> {
    let mut staged = driver.stage().await.expect("stage");
    for c in bytes.chunks(chunk.max(1)) {
        staged
            .write(Bytes::copy_from_slice(c))
            .await
            .expect("write");
    }
    assert_eq!(staged.size(), bytes.len() as u64);
    staged.commit(digest, size).await
}

/// Runs every case against `driver`, which must start empty.
pub async fn run(driver: &dyn BlobDriver) {
    absent(driver).await;
    verified_before_visible(driver).await;
    ranges_and_large(driver).await;
    empty_and_sha512(driver).await;
    list_and_delete(driver).await;
    staged_as(driver).await;
}

/// A blob staged for a digest known ahead ([`BlobDriver::stage_as`]): visible only
/// after a verified commit, small or larger than a part, sha256 or sha512.
async fn staged_as(driver: &dyn BlobDriver) {
    for (len, sha512) in [
        (10_000, false),
        (super::s3::PART + 7, false),
        (super::s3::PART + 9, true),
    ] {
        let bytes = content(len, 6);
        let d = if sha512 {
            Digest::sha512_of(&bytes)
        } else {
            Digest::sha256_of(&bytes)
        };
        // Other bytes staged for that digest: refused, and nothing visible.
        let mut staged = driver.stage_as(&d).await.unwrap();
        for c in content(len, 7).chunks(1 << 20) {
            staged.write(Bytes::copy_from_slice(c)).await.unwrap();
        }
        let e = staged.commit(&d, None).await.unwrap_err();
        assert!(matches!(e, DriverError::DigestMismatch { .. }), "{e}");
        assert_eq!(
            driver.stat(&d).await.unwrap(),
            None,
            "a mismatch stores nothing"
        );
        // Dropped uncommitted: nothing visible either.
        let mut staged = driver.stage_as(&d).await.unwrap();
        staged.write(Bytes::from(bytes.clone())).await.unwrap();
        drop(staged);
        assert_eq!(driver.stat(&d).await.unwrap(), None);

        let mut staged = driver.stage_as(&d).await.unwrap();
        for c in bytes.chunks(1 << 20) {
            staged.write(Bytes::copy_from_slice(c)).await.unwrap();
        }
        staged.commit(&d, Some(len as u64)).await.expect("commits");
        assert_eq!(driver.read(&d).await.unwrap().unwrap(), bytes);
        assert!(driver.delete(&d).await.unwrap());
    }
}

async fn absent(driver: &dyn BlobDriver) {
    let d = Digest::sha256_of(b"never stored");
    assert_eq!(driver.stat(&d).await.unwrap(), None);
    assert!(driver.read(&d).await.unwrap().is_none());
    assert!(collect(driver, &d, 0, 10).await.is_none());
    assert!(!driver.delete(&d).await.unwrap());
}

async fn verified_before_visible(driver: &dyn BlobDriver) {
    let bytes = content(100_000, 1);
    let good = Digest::sha256_of(&bytes);
    put(driver, &bytes, 4096, &good, Some(bytes.len() as u64))
        .await
        .expect("a matching digest commits");
    assert_eq!(driver.stat(&good).await.unwrap(), Some(bytes.len() as u64));
    assert_eq!(driver.read(&good).await.unwrap().unwrap(), bytes);
    // Committing the same content again is fine (two pushes of one layer).
    put(driver, &bytes, 65536, &good, None).await.unwrap();

    let wrong = Digest::sha256_of(b"something else");
    let e = put(driver, &bytes, 4096, &wrong, None).await.unwrap_err();
    assert!(matches!(e, DriverError::DigestMismatch { .. }), "{e}");
    assert_eq!(
        driver.stat(&wrong).await.unwrap(),
        None,
        "a mismatch stores nothing"
    );

    let other = content(1000, 2);
    let d = Digest::sha256_of(&other);
    let e = put(driver, &other, 100, &d, Some(999)).await.unwrap_err();
    assert!(matches!(e, DriverError::SizeMismatch { .. }), "{e}");
    assert_eq!(driver.stat(&d).await.unwrap(), None);

    // Dropped uncommitted: nothing visible.
    let mut staged = driver.stage().await.unwrap();
    staged.write(Bytes::from(other.clone())).await.unwrap();
    drop(staged);
    assert_eq!(driver.stat(&d).await.unwrap(), None);
}

async fn ranges_and_large(driver: &dyn BlobDriver) {
    // Larger than an S3 part, so that the multipart path is taken, written in chunks
    // that do not divide a part.
    let bytes = content(super::s3::PART * 2 + 12_345, 3);
    let d = Digest::sha256_of(&bytes);
    put(driver, &bytes, 1_000_003, &d, Some(bytes.len() as u64))
        .await
        .expect("a large blob commits");
    let n = bytes.len() as u64;
    assert_eq!(driver.stat(&d).await.unwrap(), Some(n));
    assert_eq!(collect(driver, &d, 0, n).await.unwrap(), bytes);
    assert_eq!(
        collect(driver, &d, 10, 20).await.unwrap(),
        bytes[10..20].to_vec()
    );
    assert_eq!(
        collect(driver, &d, n - 7, n).await.unwrap(),
        bytes[bytes.len() - 7..].to_vec()
    );
    let mid = super::s3::PART as u64 - 5;
    assert_eq!(
        collect(driver, &d, mid, mid + 10).await.unwrap(),
        bytes[mid as usize..mid as usize + 10].to_vec(),
        "a range across a part boundary"
    );

    let wrong = Digest::sha256_of(b"not the large one");
    let e = put(driver, &bytes, 1 << 20, &wrong, None)
        .await
        .unwrap_err();
    assert!(matches!(e, DriverError::DigestMismatch { .. }), "{e}");
    assert_eq!(driver.stat(&wrong).await.unwrap(), None);
}

async fn empty_and_sha512(driver: &dyn BlobDriver) {
    let empty = Digest::sha256_of(b"");
    put(driver, b"", 1, &empty, Some(0)).await.unwrap();
    assert_eq!(driver.stat(&empty).await.unwrap(), Some(0));
    assert_eq!(
        collect(driver, &empty, 0, 0).await.unwrap(),
        Vec::<u8>::new()
    );

    let bytes = content(3000, 4);
    let d = Digest::sha512_of(&bytes);
    put(driver, &bytes, 700, &d, None).await.unwrap();
    assert_eq!(driver.read(&d).await.unwrap().unwrap(), bytes);
    let big = content(super::s3::PART + 1, 5);
    let d = Digest::sha512_of(&big);
    put(driver, &big, 1 << 20, &d, None).await.unwrap();
    assert_eq!(driver.stat(&d).await.unwrap(), Some(big.len() as u64));
    let wrong = Digest::sha512_of(b"x");
    let e = put(driver, &big, 1 << 20, &wrong, None).await.unwrap_err();
    assert!(matches!(e, DriverError::DigestMismatch { .. }), "{e}");
    assert_eq!(driver.stat(&wrong).await.unwrap(), None);
}

async fn list_and_delete(driver: &dyn BlobDriver) {
    let mut listed: Vec<String> = driver
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(d, _)| d.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        listed.len(),
        5,
        "every committed blob and nothing staged: {listed:?}"
    );
    let small = Digest::sha256_of(&content(100_000, 1));
    assert!(listed.contains(&small.to_string()));
    assert!(driver.delete(&small).await.unwrap());
    assert!(!driver.delete(&small).await.unwrap());
    assert_eq!(driver.stat(&small).await.unwrap(), None);
    assert_eq!(driver.list().await.unwrap().len(), 4);
}
