//! Registry actions as RBAC attributes (openshift/image-registry's `auth.go`).

use super::super::registry::{OnDeny, RegistryAction, Repository, registry_checks};
use super::*;

// ---- registry mapping ----

#[test]
fn registry_pull_is_get_imagestreams_layers_on_the_stream() {
    let u = user("u");
    let checks = registry_checks(
        &u,
        RegistryAction::Pull(Repository::parse("team-a/app").unwrap()),
    );
    assert_eq!(checks.on_deny, OnDeny::Refuse);
    assert_eq!(
        checks.attributes,
        [Attributes::resource(
            u,
            "get",
            res("image.openshift.io", "imagestreams")
                .subresource("layers")
                .namespace("team-a")
                .name("app")
        )]
    );
}

#[test]
fn registry_push_is_update_layers_plus_create_imagestreams_for_a_new_stream() {
    let u = user("u");
    let repository = Repository::parse("team-a/app").unwrap();
    let existing = registry_checks(
        &u,
        RegistryAction::Push {
            repository,
            stream_exists: true,
        },
    );
    assert_eq!(existing.attributes.len(), 1);
    assert_eq!(existing.attributes[0].verb, "update");
    let new = registry_checks(
        &u,
        RegistryAction::Push {
            repository,
            stream_exists: false,
        },
    );
    assert_eq!(
        new.attributes[1],
        Attributes::resource(
            u,
            "create",
            res("image.openshift.io", "imagestreams").namespace("team-a")
        )
    );
}

#[test]
fn registry_delete_and_catalog_are_cluster_wide() {
    let u = user("u");
    let delete = registry_checks(&u, RegistryAction::Delete);
    assert_eq!(
        delete.attributes,
        [Attributes::resource(
            u.clone(),
            "delete",
            res("image.openshift.io", "images")
        )]
    );
    let catalog = registry_checks(&u, RegistryAction::Catalog);
    assert_eq!(
        catalog.attributes,
        [Attributes::resource(
            u,
            "list",
            res("image.openshift.io", "imagestreams")
        )]
    );
}

#[test]
fn registry_mount_without_source_access_falls_back_to_upload() {
    let checks = registry_checks(
        &user("u"),
        RegistryAction::MountFrom(Repository::parse("other/app").unwrap()),
    );
    assert_eq!(checks.on_deny, OnDeny::PlainUpload);
    assert_eq!(checks.attributes[0].verb, "get");
}

#[test]
fn registry_repository_names_must_be_namespace_slash_name() {
    for bad in ["app", "/app", "ns/", "a/b/c", ""] {
        assert!(Repository::parse(bad).is_err(), "{bad}");
    }
}
