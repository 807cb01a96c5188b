//! Tags that follow a range (`moor.io/follow-*` annotations on a spec tag, see
//! [`moor_api::image::follow`]): the spec tag's `from.name` names a repository; the
//! repository's tag list is read through the [`Source`] port and the tag the policy
//! picks is imported, as if the spec tag named it ([`pin`]). Calls the source only.

use moor_api::DockerImageReference;
use moor_api::image::follow::{FOLLOW_ANNOTATIONS, FollowPolicy, is_followed};
use moor_api::image::{KIND_DOCKER_IMAGE, TagReference};

use super::{ImportError, PullOptions, Source};

/// The answer to a conditional tag list request through the [`Source`] port.
#[derive(Clone, Debug)]
pub enum TagsAnswer {
    /// The registry answered `304 Not Modified` to the ETag given.
    NotModified,
    /// The whole list, the registry's `ETag` for it (if it sent one), and how many
    /// requests (pages) it took.
    Changed {
        tags: Vec<String>,
        etag: Option<String>,
        requests: usize,
    },
}

/// Whether `tag` is imported by following a range: a followed DockerImage source that
/// is imported (not `reference`).
pub fn follows(tag: &TagReference) -> bool {
    is_followed(tag) && tag.from_kind() == KIND_DOCKER_IMAGE && !tag.reference
}

/// The policy of a followed tag; an unreadable policy is an invalid import.
pub fn policy_of(tag: &TagReference) -> Result<FollowPolicy, ImportError> {
    match FollowPolicy::of_tag(tag) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(ImportError::invalid("the tag follows no range")),
        Err(e) => Err(ImportError::invalid_because("invalid follow policy", e)),
    }
}

/// The repository a followed tag reads the tag list of (its `from.name`, any tag or
/// digest dropped).
pub fn repository_of(tag: &TagReference) -> Result<DockerImageReference, ImportError> {
    DockerImageReference::parse(tag.from_name())
        .map(|r| r.as_repository())
        .map_err(|e| {
            ImportError::invalid(format!(
                "invalid image reference {:?}: {e}",
                tag.from_name()
            ))
        })
}

/// The tag `policy` picks from `tags`, or a not-found error that names the range.
pub fn choose(
    policy: &FollowPolicy,
    repository: &DockerImageReference,
    tags: &[String],
) -> Result<String, ImportError> {
    policy
        .select(tags.iter().map(String::as_str))
        .map(str::to_string)
        .ok_or_else(|| {
            ImportError::not_found(format!(
                "no tag of {} matches {}",
                repository.exact(),
                policy.summary()
            ))
        })
}

/// `tag` as if it named `repository:chosen` directly: the follow annotations are
/// dropped, so the importer imports exactly that tag.
pub fn pinned(tag: &TagReference, repository: &DockerImageReference, chosen: &str) -> TagReference {
    let mut t = tag.clone();
    if let Some(from) = t.from.as_mut() {
        from.name = Some(format!("{}:{chosen}", repository.exact()));
    }
    if let Some(a) = t.annotations.as_mut() {
        for k in FOLLOW_ANNOTATIONS {
            a.remove(k);
        }
    }
    t
}

/// Reads the tag list of a followed tag's repository (every page, unconditionally)
/// and returns the spec tag pinned to the tag its policy picks.
pub async fn pin(
    source: &dyn Source,
    tag: &TagReference,
    pull: PullOptions,
) -> Result<TagReference, ImportError> {
    let policy = policy_of(tag)?;
    let repository = repository_of(tag)?;
    let pull = PullOptions {
        insecure: tag.import_policy.insecure || pull.insecure,
        secrets: pull.secrets,
    };
    let tags = source.tags(&repository, &pull).await?;
    let chosen = choose(&policy, &repository, &tags)?;
    tracing::debug!(repository = %repository.exact(), %chosen, policy = %policy.summary(), "followed tag resolved");
    Ok(pinned(tag, &repository, &chosen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    #[test]
    fn a_pinned_tag_names_the_chosen_tag_and_follows_nothing() {
        let p = FollowPolicy::new(Some(">=1.0.0 <2"), None, None, None, false).unwrap();
        let tag = TagReference {
            name: "1".into(),
            annotations: Some(p.annotations()),
            from: Some(ObjectReference {
                kind: Some(KIND_DOCKER_IMAGE.into()),
                name: Some("r.example/a/b".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(follows(&tag));
        let repo = repository_of(&tag).unwrap();
        let tags = vec!["1.0.0".to_string(), "1.2.0".into(), "2.0.0".into()];
        let chosen = choose(&policy_of(&tag).unwrap(), &repo, &tags).unwrap();
        let pinned = pinned(&tag, &repo, &chosen);
        assert_eq!(pinned.from_name(), "r.example/a/b:1.2.0");
        assert!(!follows(&pinned));
        let none = choose(&policy_of(&tag).unwrap(), &repo, &["3.0".to_string()]);
        assert!(
            none.unwrap_err()
                .message()
                .contains("no tag of r.example/a/b matches")
        );
    }
}
