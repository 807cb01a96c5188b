//! Property tests (the stand-in for `cargo fuzz`, which needs a nightly toolchain) of
//! the reference and digest parsers: no input makes them panic, and what parses
//! prints back to a form that parses to the same reference. `PROPTEST_CASES` sets how
//! many inputs run (256 by default); docs/security.md records longer runs.

use moor_api::{Digest, DockerImageReference};
use proptest::prelude::*;

/// Strings built from the characters references are made of, so that many parse.
fn reference_like() -> impl Strategy<Value = String> {
    prop::string::string_regex("[a-zA-Z0-9._:/@+-]{0,80}").expect("valid regex")
}

/// Well-formed references with every optional part.
fn well_formed() -> impl Strategy<Value = String> {
    (
        prop::option::of(prop_oneof![
            Just("quay.io".to_string()),
            Just("localhost:5000".to_string()),
            Just("registry.example.com".to_string()),
            Just("[::1]:5000".to_string()),
        ]),
        // No dots: a lone first component with a dot names a registry (`quay.io`).
        prop::collection::vec("[a-z0-9]{1,8}([_-][a-z0-9]{1,4})?", 1..4),
        prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        prop::option::of("[0-9a-f]{64}"),
    )
        .prop_map(|(registry, path, tag, digest)| {
            let mut s = String::new();
            if let Some(r) = registry {
                s.push_str(&r);
                s.push('/');
            }
            s.push_str(&path.join("/"));
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(d) = digest {
                s.push_str("@sha256:");
                s.push_str(&d);
            }
            s
        })
}

proptest! {
    #[test]
    fn any_text_parses_or_is_refused_without_panic(s in any::<String>()) {
        let _ = DockerImageReference::parse(&s);
        let _ = Digest::parse(&s);
    }

    #[test]
    fn reference_like_text_round_trips(s in reference_like()) {
        if let Ok(r) = DockerImageReference::parse(&s) {
            let printed = r.exact();
            let again = DockerImageReference::parse(&printed)
                .map_err(|e| TestCaseError::fail(format!("{s:?} printed as {printed:?}: {e}")))?;
            prop_assert_eq!(again.exact(), printed);
        }
    }

    #[test]
    fn well_formed_references_parse_and_round_trip(s in well_formed()) {
        let r = DockerImageReference::parse(&s)
            .map_err(|e| TestCaseError::fail(format!("{s:?}: {e}")))?;
        // `exact()` is the pinned form: with both a tag and a digest it keeps the
        // digest, so the round trip is of that form.
        let again = DockerImageReference::parse(&r.exact()).unwrap();
        prop_assert_eq!(again.exact(), r.exact());
        prop_assert_eq!(again.id(), r.id());
    }

    #[test]
    fn digests_round_trip(hex in "[0-9a-f]{64}") {
        let text = format!("sha256:{hex}");
        let d = Digest::parse(&text).unwrap();
        prop_assert_eq!(d.to_string(), text);
    }
}
