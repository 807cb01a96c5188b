//! Tests of the planning functions and of a prune over an in-memory API and a temporary
//! blob store.

use std::collections::{HashMap, HashSet};
use std::time::Duration;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use moor_api::Digest;
use moor_api::image::{
    DockerImageMetadata, ImageLayer, ImageManifest, NamedTagEventList, TagReference,
};
use moor_api::image::{Image, ImageStream, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE, TagEvent};
use moor_api::prune::ImagePruneSpec;

use super::run::apply_blob_plan;
use super::*;
use crate::registry::storage::{BlobStore, Link, LinkKind, ReferrerRecord};

const NOW: i64 = 1_800_000_000;

fn at(secs_ago: i64) -> Time {
    Time(jiff::Timestamp::from_second(NOW - secs_ago).unwrap())
}

fn policy(revisions: usize, keep_younger_secs: u64) -> Policy {
    Policy::new(
        &ImagePruneSpec {
            keep_tag_revisions: Some(revisions as u32),
            keep_younger_than: Some(Duration::from_secs(keep_younger_secs)),
            ..Default::default()
        },
        jiff::Timestamp::from_second(NOW).unwrap(),
    )
}

fn digest(n: u8) -> String {
    Digest::sha256_of(&[n]).to_string()
}

fn event(n: u8, secs_ago: i64) -> TagEvent {
    TagEvent {
        created: Some(at(secs_ago)),
        image: digest(n),
        docker_image_reference: format!("quay.io/a/b@{}", digest(n)),
        ..Default::default()
    }
}

fn stream(ns: &str, name: &str, tags: Vec<(&str, Vec<TagEvent>)>) -> ImageStream {
    let mut s = ImageStream {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            creation_timestamp: Some(at(100_000)),
            ..Default::default()
        },
        ..Default::default()
    };
    s.status.tags = tags
        .into_iter()
        .map(|(t, items)| NamedTagEventList {
            tag: t.into(),
            items,
            conditions: vec![],
        })
        .collect();
    s
}

fn image(n: u8, secs_ago: i64, layers: &[u8]) -> Image {
    Image {
        metadata: ObjectMeta {
            name: Some(digest(n)),
            creation_timestamp: Some(at(secs_ago)),
            ..Default::default()
        },
        docker_image_metadata: Some(DockerImageMetadata {
            id: digest(100 + n),
            ..Default::default()
        }),
        docker_image_layers: layers
            .iter()
            .map(|l| ImageLayer {
                name: digest(200 + l),
                size: 10,
                media_type: String::new(),
            })
            .collect(),
        ..Default::default()
    }
}

fn images_of(s: &ImageStream) -> Vec<&str> {
    s.status.tags[0]
        .items
        .iter()
        .map(|e| e.image.as_str())
        .collect()
}

#[test]
fn history_keeps_revisions_young_entries_and_the_newest() {
    let items = vec![
        event(1, 7200),
        event(2, 7200),
        event(3, 60), // young
        event(4, 7200),
        event(5, 7200),
    ];
    let mut s = stream("ns", "app", vec![("1.0", items)]);
    let removed = prune_history(&mut s, &policy(2, 3600), &Pins::new());
    assert_eq!(images_of(&s), [digest(1), digest(2), digest(3)]);
    let gone: Vec<String> = removed.iter().map(|(_, e)| e.image.clone()).collect();
    assert_eq!(gone, [digest(4), digest(5)]);
    assert!(removed.iter().all(|(t, _)| t == "1.0"));
}

#[test]
fn the_newest_entry_stays_even_with_zero_revisions() {
    let mut s = stream(
        "ns",
        "app",
        vec![("t", vec![event(1, 9000), event(2, 9000)])],
    );
    let removed = prune_history(&mut s, &policy(0, 0), &Pins::new());
    assert_eq!(images_of(&s), [digest(1)]);
    assert_eq!(removed.len(), 1);
}

#[test]
fn pinned_entries_and_young_streams_are_kept() {
    let items = vec![event(1, 9000), event(2, 9000), event(3, 9000)];
    let mut s = stream("ns", "app", vec![("t", items.clone())]);
    let pins = workload_pins([
        format!("moor.local:8443/ns/app@{}", digest(3)).as_str(),
        format!("moor.local:8443/other/app@{}", digest(2)).as_str(),
        "keycloak:20.0",
        "not a reference",
    ]);
    assert_eq!(pins.len(), 2);
    prune_history(&mut s, &policy(1, 0), &pins);
    assert_eq!(images_of(&s), [digest(1), digest(3)]);

    let mut young = stream("ns", "app", vec![("t", items)]);
    young.metadata.creation_timestamp = Some(at(10));
    assert!(prune_history(&mut young, &policy(1, 3600), &Pins::new()).is_empty());
}

#[test]
fn one_second_of_doubt_counts_as_young() {
    let p = policy(1, 0);
    assert!(!p.is_old(Some(&at(0))));
    assert!(!p.is_old(Some(&at(1))));
    assert!(p.is_old(Some(&at(2))));
    assert!(p.is_old(None));
}

fn by_name(images: &[Image]) -> HashMap<&str, &Image> {
    images
        .iter()
        .map(|i| (i.metadata.name.as_deref().unwrap(), i))
        .collect()
}

#[test]
fn images_named_by_history_spec_tags_lists_and_referrers_are_kept() {
    let mut list = image(10, 9000, &[]);
    list.docker_image_manifests = vec![ImageManifest {
        digest: digest(11),
        ..Default::default()
    }];
    let images = vec![
        image(1, 9000, &[1]), // in history
        image(2, 9000, &[2]), // unreferenced, old: removed
        image(3, 10, &[3]),   // unreferenced, young: kept
        list,                 // in history
        image(11, 9000, &[]), // child of the list
        image(4, 9000, &[]),  // spec tag ImageStreamImage
        image(5, 9000, &[]),  // spec tag DockerImage of this registry
        image(6, 9000, &[]),  // spec tag DockerImage elsewhere: removed
        image(7, 9000, &[]),  // referrer of image 1
        image(8, 9000, &[]),  // a root (pushed lately)
    ];
    let mut s = stream(
        "ns",
        "app",
        vec![("a", vec![event(1, 9000), event(10, 9000)])],
    );
    let from = |kind: &str, name: String| TagReference {
        name: "x".into(),
        from: Some(ObjectReference {
            kind: Some(kind.into()),
            name: Some(name),
            ..Default::default()
        }),
        ..Default::default()
    };
    s.spec.tags = vec![
        from(KIND_IMAGE_STREAM_IMAGE, format!("other@{}", digest(4))),
        from(
            KIND_DOCKER_IMAGE,
            format!("moor.local:8443/ns/app@{}", digest(5)),
        ),
        from(KIND_DOCKER_IMAGE, format!("quay.io/ns/app@{}", digest(6))),
    ];
    let referrers = vec![ReferrerRecord {
        namespace: "ns".into(),
        stream: "app".into(),
        subject: Digest::parse(&digest(1)).unwrap(),
        manifest: Digest::parse(&digest(7)).unwrap(),
    }];
    let referenced = referenced_images(
        [&s],
        &by_name(&images),
        &referrers,
        "moor.local:8443",
        [digest(8)],
    );
    let plan = plan_images(&images, &referenced, &policy(1, 3600));
    let mut expected = vec![digest(2), digest(6)];
    expected.sort();
    assert_eq!(plan.remove, expected);
    assert_eq!(plan.young, 1);
}

fn link(stream: &str, kind: LinkKind, d: &str, modified: SystemTime) -> Link {
    Link {
        namespace: "ns".into(),
        stream: stream.into(),
        kind,
        digest: Digest::parse(d).unwrap(),
        modified,
    }
}

#[test]
fn blobs_of_remaining_images_and_young_blobs_and_links_are_kept() {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW as u64 - 9000);
    let young = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW as u64 - 10);
    // Image 1 stays; image 2 (layers 2 and 3, layer 2 shared) was removed.
    let kept = image(1, 9000, &[1, 2]);
    let blob = |d: String, t: SystemTime| (Digest::parse(&d).unwrap(), 10u64, t);
    let blobs = vec![
        blob(digest(1), old),   // manifest of kept
        blob(digest(101), old), // config of kept
        blob(digest(201), old),
        blob(digest(202), old),  // shared layer
        blob(digest(2), old),    // manifest of removed
        blob(digest(102), old),  // config of removed
        blob(digest(203), old),  // layer of removed
        blob(digest(50), young), // written lately
        blob(digest(51), old),   // linked lately
        blob(digest(52), old),   // only in a gone repository
    ];
    let links = vec![
        link("app", LinkKind::Layer, &digest(203), old),
        link("app", LinkKind::Layer, &digest(202), old),
        link("app", LinkKind::Manifest, &digest(2), old),
        link("app", LinkKind::Layer, &digest(51), young),
        link("gone", LinkKind::Layer, &digest(52), old),
    ];
    let repos = vec![
        ("ns".to_string(), "app".to_string()),
        ("ns".into(), "gone".into()),
    ];
    let live: HashSet<(String, String)> = [("ns".to_string(), "app".to_string())].into();
    let removed_images: HashSet<String> = [digest(2)].into();
    let plan = plan_blobs(
        &blobs,
        [&kept],
        &links,
        &repos,
        &live,
        &removed_images,
        &policy(1, 3600),
    );
    let mut expected: Vec<String> = vec![digest(2), digest(102), digest(203), digest(52)];
    expected.sort();
    let got: Vec<String> = plan.blobs.iter().map(|(d, _)| d.to_string()).collect();
    assert_eq!(got, expected);
    assert_eq!(plan.repositories, [("ns".to_string(), "gone".to_string())]);
    let unlinked: Vec<(&str, String)> = plan
        .links
        .iter()
        .map(|l| (l.kind.as_str(), l.digest.to_string()))
        .collect();
    assert_eq!(unlinked, [("layer", digest(203)), ("manifest", digest(2))]);
}

#[test]
fn a_gone_repository_with_a_young_link_stays() {
    let young = SystemTime::now();
    let links = vec![link("new", LinkKind::Layer, &digest(1), young)];
    let plan = plan_blobs(
        &[],
        std::iter::empty(),
        &links,
        &[("ns".into(), "new".into())],
        &HashSet::new(),
        &HashSet::new(),
        &Policy::new(&ImagePruneSpec::default(), jiff::Timestamp::now()),
    );
    assert!(plan.repositories.is_empty());
}

#[tokio::test]
async fn a_blob_written_again_after_planning_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let (fresh, stale) = (Digest::sha256_of(b"fresh"), Digest::sha256_of(b"stale"));
    store.put(&fresh, b"fresh").unwrap();
    store.put(&stale, b"stale").unwrap();
    store.link("ns", "app", LinkKind::Layer, &stale).unwrap();
    let plan = BlobPlan {
        blobs: vec![(fresh.clone(), 5), (stale.clone(), 5)],
        links: store.list_links(),
        repositories: vec![],
    };
    // The prune started a minute ago; `stale` is made to look older than that.
    let policy = Policy::new(
        &ImagePruneSpec {
            keep_younger_than: Some(Duration::ZERO),
            ..Default::default()
        },
        jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60),
    );
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(store.blob_path(&stale))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let links = crate::registry::links::Links::files(store.clone());
    let content = crate::registry::driver::file::FileBlobs::new(store.clone());
    let (done, errors) = apply_blob_plan(&links, &content, plan, &policy).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(done.blobs, [(stale.clone(), 5)]);
    assert_eq!(done.links.len(), 1);
    assert!(store.blob_path(&fresh).exists(), "written after the start");
    assert!(!store.blob_path(&stale).exists());
    assert!(!store.is_linked("ns", "app", LinkKind::Layer, &stale));
}
