//! The blob-storage conformance suite on the S3 driver, against a real SeaweedFS
//! (`weed mini` on loopback). The file driver runs the same suite in its unit tests
//! (`registry::driver::tests`).

use std::time::{Duration, Instant};


use moor_server::registry::driver::s3::S3Blobs;
use moor_server::registry::driver::{BlobDriver, conformance};
use moor_testkit::seaweedfs::{ACCESS_KEY, SECRET_KEY};
use moor_testkit::SeaweedFs;

/// The driver for `weed`'s bucket under `prefix`, once a signed listing succeeds
/// (the bucket appears a moment after the S3 port answers).
async fn connect(weed: &SeaweedFs, prefix: &str) -> S3Blobs {
    let driver = S3Blobs::connect(
        &weed.bucket,
        prefix,
        Some(&weed.endpoint),
        Some("us-east-1"),
        Some((ACCESS_KEY, SECRET_KEY)),
    )
    .expect("an S3 driver");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match driver.list().await {
            Ok(_) => return driver,
            Err(e) if Instant::now() > deadline => {
                panic!("SeaweedFS's bucket never answered: {e}\n{}", weed.log())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_driver_passes_the_conformance_suite() {
    let Some(weed) = tokio::task::spawn_blocking(|| SeaweedFs::start("moor"))
        .await
        .unwrap()
    else {
        return;
    };
    let driver = connect(&weed, "conformance").await;
    conformance::run(&driver).await;
    assert_eq!(
        driver.staging_objects().await.unwrap(),
        0,
        "no staged object is left behind"
    );
    // Another prefix in the same bucket is another store.
    let other = connect(&weed, "elsewhere").await;
    assert!(other.list().await.unwrap().is_empty());
}
