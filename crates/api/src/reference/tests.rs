//! Tests of digests and references: the parse table and its round trips (long on purpose:
//! the cases read as a table).

use std::sync::LazyLock;

use super::grammar::{DOMAIN_RE, GENERIC_DIGEST_RE, PATH_RE, REFERENCE_RE, TAG_RE};
use super::*;

const HEX: &str = "3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25";

fn sha() -> String {
    format!("sha256:{HEX}")
}

#[test]
fn regexes_compile() {
    LazyLock::force(&REFERENCE_RE);
    LazyLock::force(&DOMAIN_RE);
    LazyLock::force(&PATH_RE);
    LazyLock::force(&TAG_RE);
    LazyLock::force(&GENERIC_DIGEST_RE);
}

// --- Digest -----------------------------------------------------------------------

#[test]
fn digest_parses_sha256_and_sha512() {
    let d = Digest::parse(&sha()).unwrap();
    assert_eq!(d.algorithm(), DigestAlgorithm::Sha256);
    assert_eq!(d.hex(), HEX);
    assert_eq!(d.to_string(), sha());
    let long = format!("sha512:{}", "ab".repeat(64));
    let d = Digest::parse(&long).unwrap();
    assert_eq!(d.algorithm(), DigestAlgorithm::Sha512);
    assert_eq!(d.hex().len(), 128);
}

#[test]
fn digest_rejects_bad_values() {
    use ReferenceError::*;
    let cases: &[(&str, ReferenceError)] = &[
        ("", DigestInvalidFormat),
        ("sha256", DigestInvalidFormat),
        ("sha256:", DigestInvalidFormat),
        (":abc", DigestInvalidFormat),
        ("sha256:abc", DigestInvalidLength),
        ("sha512:abc", DigestInvalidLength),
        (
            &format!("sha256:{}", HEX.to_uppercase()),
            DigestInvalidFormat,
        ),
        (&format!("sha256:{}g", &HEX[..63]), DigestInvalidFormat),
        (&format!("md5:{HEX}"), DigestUnsupported),
        (&format!("sha384:{}", "a".repeat(96)), DigestUnsupported),
        ("bad digest:xyz", DigestInvalidFormat),
    ];
    for (input, expected) in cases {
        assert_eq!(Digest::parse(input).unwrap_err(), *expected, "{input}");
    }
}

#[test]
fn digest_of_bytes() {
    // sha256("") is well known.
    let d = Digest::sha256_of(b"");
    assert_eq!(
        d.as_str(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(d.matches(b""));
    assert!(!d.matches(b"x"));
    let d512 = Digest::sha512_of(b"abc");
    assert!(d512.as_str().starts_with("sha512:ddaf35a193617aba"));
    assert!(Digest::parse(d512.as_str()).is_ok());
}

#[test]
fn digest_hasher_streams() {
    let mut h = DigestHasher::new(DigestAlgorithm::Sha256);
    h.update(b"hello ");
    h.update(b"world");
    assert_eq!(h.finish(), Digest::sha256_of(b"hello world"));
}

#[test]
fn digest_serde_is_a_validated_string() {
    let d = Digest::parse(&sha()).unwrap();
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(json, format!("\"{}\"", sha()));
    assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    assert!(serde_json::from_str::<Digest>("\"sha256:nope\"").is_err());
}

// --- DockerImageReference: OpenShift library-go cases ----------------------------

struct Case {
    from: String,
    registry: &'static str,
    namespace: String,
    name: String,
    tag: String,
    id: &'static str,
}

fn ok(from: &str, registry: &'static str, namespace: &str, name: &str, tag: &str) -> Case {
    Case {
        from: from.to_owned(),
        registry,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        tag: tag.to_owned(),
        id: "",
    }
}

fn with_id(mut c: Case) -> Case {
    c.id = "id";
    c
}

#[test]
fn parse_matches_library_go() {
    let s = sha();
    let cases = vec![
        ok("foo", "", "", "foo", ""),
        ok("foo:tag", "", "", "foo", "tag"),
        ok(&s, "", "", "sha256", HEX),
        with_id(ok(&format!("foo@{s}"), "", "", "foo", "")),
        ok("bar/foo", "", "bar", "foo", ""),
        ok("bar/foo:tag", "", "bar", "foo", "tag"),
        with_id(ok(&format!("bar/foo@{s}"), "", "bar", "foo", "")),
        ok("bar/foo/baz", "", "bar", "foo/baz", ""),
        ok("bar/library/baz", "", "bar", "library/baz", ""),
        ok("bar/foo/baz:tag", "", "bar", "foo/baz", "tag"),
        with_id(ok(&format!("bar/foo/baz@{s}"), "", "bar", "foo/baz", "")),
        ok("bar:5000/foo/baz", "bar:5000", "foo", "baz", ""),
        ok("bar:5000/library/baz", "bar:5000", "library", "baz", ""),
        ok("bar:5000/baz", "bar:5000", "", "baz", ""),
        ok("bar:5000/foo/baz:tag", "bar:5000", "foo", "baz", "tag"),
        with_id(ok(
            &format!("bar:5000/foo/baz@{s}"),
            "bar:5000",
            "foo",
            "baz",
            "",
        )),
        ok("myregistry.io/foo", "myregistry.io", "", "foo", ""),
        ok("localhost/bar", "localhost", "", "bar", ""),
        ok(
            "docker.io/library/myapp",
            "docker.io",
            "library",
            "myapp",
            "",
        ),
        ok("docker.io/myapp", "docker.io", "", "myapp", ""),
        ok("docker.io/user/myapp", "docker.io", "user", "myapp", ""),
        ok(
            "docker.io/user/project/myapp",
            "docker.io",
            "user",
            "project/myapp",
            "",
        ),
        ok("index.docker.io/bar", "index.docker.io", "", "bar", ""),
        ok(
            &format!("bar:5000/{}/{}:tag", "a".repeat(63), "b".repeat(182)),
            "bar:5000",
            &"a".repeat(63),
            &"b".repeat(182),
            "tag",
        ),
        ok(
            &format!("docker.io/library/{}:tag", "b".repeat(231)),
            "docker.io",
            "library",
            &"b".repeat(231),
            "tag",
        ),
        ok("quay.io", "quay.io", "", "", ""),
        ok("quay.io/org", "quay.io", "", "org", ""),
        ok("localhost:5000", "localhost:5000", "", "", ""),
        ok("localhost:5000/org", "localhost:5000", "", "org", ""),
        ok("bar/foo/baz/biz", "", "bar", "foo/baz/biz", ""),
        // The seed's walkthrough.
        ok("keycloak:20.0", "", "", "keycloak", "20.0"),
        ok(
            "quay.io/keycloak/keycloak:20.0.2",
            "quay.io",
            "keycloak",
            "keycloak",
            "20.0.2",
        ),
        with_id(ok(
            &format!("localhost:5000/a/b@{s}"),
            "localhost:5000",
            "a",
            "b",
            "",
        )),
        ok(
            "127.0.0.1:5000/ns/n:tag",
            "127.0.0.1:5000",
            "ns",
            "n",
            "tag",
        ),
        ok("quay.io/a/b/c", "quay.io", "a", "b/c", ""),
        ok("[::1]:5000/ns/n", "[::1]:5000", "ns", "n", ""),
        ok(
            "Registry.Example.COM/ns/n",
            "Registry.Example.COM",
            "ns",
            "n",
            "",
        ),
        ok("my_org/app-x.y__z", "", "my_org", "app-x.y__z", ""),
        ok("a/b:Tag_1.2-x", "", "a", "b", "Tag_1.2-x"),
    ];
    for c in cases {
        let r = DockerImageReference::parse(&c.from)
            .unwrap_or_else(|e| panic!("{}: unexpected error {e}", c.from));
        assert_eq!(r.registry(), c.registry, "{}: registry", c.from);
        assert_eq!(r.namespace(), c.namespace, "{}: namespace", c.from);
        assert_eq!(r.name(), c.name, "{}: name", c.from);
        assert_eq!(r.tag().unwrap_or(""), c.tag, "{}: tag", c.from);
        let id = r.id().map(|d| d.to_string()).unwrap_or_default();
        assert_eq!(
            id,
            if c.id.is_empty() {
                String::new()
            } else {
                sha()
            },
            "{}",
            c.from
        );
    }
}

#[test]
fn parse_rejects_like_library_go() {
    use ReferenceError::*;
    let s = sha();
    let cases: Vec<(String, ReferenceError)> =
        vec![
        (
            format!("bar:5000/{}/{}:tag", "a".repeat(63), "b".repeat(183)),
            NameTooLong,
        ),
        (format!("docker.io/{}:tag", "b".repeat(246)), NameTooLong),
        ("registry.io/foo/bar/:Tag".into(), InvalidFormat),
        ("https://bar:5000/foo/baz".into(), InvalidFormat),
        (format!("http://bar:5000/foo/baz@{s}"), InvalidFormat),
        (
            "registry:3000/integration/imageStream:success".into(),
            NameContainsUppercase,
        ),
        (
            "registry:5000/integration/test-image-stream@sha256:00000000000000000000000000000001"
                .into(),
            DigestInvalidLength,
        ),
        ("abc@badid".into(), InvalidFormat),
        ("index.docker.io/mysql@sha256:bad".into(), InvalidFormat),
        (format!("@{s}"), InvalidFormat),
        (":tag".into(), InvalidFormat),
        ("bar/foo/baz////biz".into(), InvalidFormat),
        ("//foo/baz/biz".into(), InvalidFormat),
        ("ftp://baz/baz/biz".into(), InvalidFormat),
        ("".into(), NameEmpty),
        // More invalid shapes.
        ("Keycloak:20.0".into(), NameContainsUppercase),
        ("Foo/bar".into(), NameContainsUppercase),
        ("quay.io/Keycloak/keycloak".into(), NameContainsUppercase),
        ("foo:".into(), InvalidFormat),
        ("foo:bad tag".into(), InvalidFormat),
        ("foo:-tag".into(), InvalidFormat),
        (format!("foo:{}", "t".repeat(129)), InvalidFormat),
        ("foo:a:b".into(), InvalidFormat),
        ("foo/:tag".into(), InvalidFormat),
        ("foo/".into(), InvalidFormat),
        ("/foo".into(), InvalidFormat),
        ("a//b".into(), InvalidFormat),
        ("foo..bar".into(), InvalidFormat),
        ("-foo".into(), InvalidFormat),
        ("foo bar".into(), InvalidFormat),
        ("quay.io:5000:6000/a".into(), InvalidFormat),
        (format!("foo@sha256:{}", HEX.to_uppercase()), DigestInvalidFormat),
        (format!("foo@md5:{HEX}"), DigestUnsupported),
        (format!("quay.io@{s}"), InvalidFormat),
        ("quay.io:latest".into(), InvalidFormat),
    ];
    for (input, expected) in cases {
        let got = DockerImageReference::parse(&input);
        assert_eq!(got.as_ref().err(), Some(&expected), "{input}: got {got:?}");
    }
}

#[test]
fn error_messages_match_openshift() {
    assert_eq!(
        DockerImageReference::parse("abc@badid")
            .unwrap_err()
            .to_string(),
        "invalid reference format"
    );
    assert_eq!(
        DockerImageReference::parse("a/B").unwrap_err().to_string(),
        "repository name must be lowercase"
    );
    assert_eq!(
        DockerImageReference::parse("").unwrap_err().to_string(),
        "repository name must have at least one component"
    );
}

#[test]
fn exact_and_string_forms() {
    let s = sha();
    let cases: &[(&str, &str, &str)] = &[
        ("keycloak:20.0", "keycloak:20.0", "keycloak:20.0"),
        (
            "docker.io/busybox",
            "docker.io/busybox",
            "docker.io/library/busybox",
        ),
        (
            "quay.io/keycloak/keycloak:20.0.2",
            "quay.io/keycloak/keycloak:20.0.2",
            "quay.io/keycloak/keycloak:20.0.2",
        ),
        ("quay.io", "quay.io", "quay.io"),
        ("localhost:5000", "localhost:5000", "localhost:5000"),
        ("quay.io/a/b/c:t", "quay.io/a/b/c:t", "quay.io/a/b/c:t"),
    ];
    for (input, exact, string) in cases {
        let r = DockerImageReference::parse(input).unwrap();
        assert_eq!(r.exact(), *exact, "{input}");
        assert_eq!(r.to_string(), *exact, "{input}");
        assert_eq!(r.string(), *string, "{input}");
        // exact() always parses back to the same reference.
        assert_eq!(
            DockerImageReference::parse(&r.exact()).unwrap(),
            r,
            "{input}"
        );
    }
    // A digest hides the tag.
    let r = DockerImageReference::parse(&format!("quay.io/a/b:1.0@{s}")).unwrap();
    assert_eq!(r.tag(), Some("1.0"));
    assert_eq!(r.exact(), format!("quay.io/a/b@{s}"));
    assert_eq!(r.most_specific().tag(), None);
}

#[test]
fn docker_hub_defaults() {
    let r = DockerImageReference::parse("keycloak").unwrap();
    assert!(r.is_short_name());
    assert!(r.is_docker_hub());
    assert_eq!(r.effective_registry(), "docker.io");
    assert_eq!(r.registry_api_host(), "registry-1.docker.io");
    assert_eq!(r.effective_repository(), "library/keycloak");
    assert_eq!(r.manifest_reference(), "latest");
    assert_eq!(r.registry(), "");
    assert_eq!(
        r.docker_client_defaults().exact(),
        "docker.io/library/keycloak:latest"
    );
    let d = r.docker_client_defaults();
    assert_eq!(d.daemon_minimal().exact(), "docker.io/keycloak");
    assert!(
        r.equivalent(&DockerImageReference::parse("docker.io/library/keycloak:latest").unwrap())
    );
    assert!(!r.equivalent(&DockerImageReference::parse("quay.io/keycloak").unwrap()));

    let r = DockerImageReference::parse("bitnami/redis:7").unwrap();
    assert!(!r.is_short_name());
    assert_eq!(r.effective_repository(), "bitnami/redis");
    assert_eq!(r.manifest_reference(), "7");

    let r = DockerImageReference::parse("quay.io/keycloak/keycloak:20.0.2").unwrap();
    assert!(!r.is_docker_hub());
    assert_eq!(r.registry_api_host(), "quay.io");
    assert_eq!(r.effective_repository(), "keycloak/keycloak");
    assert_eq!(r.repository_name(), "keycloak/keycloak");
    assert_eq!(r.as_repository().exact(), "quay.io/keycloak/keycloak");

    let r = DockerImageReference::parse("index.docker.io/foo").unwrap();
    assert_eq!(r.as_v2().registry(), "registry-1.docker.io");
    assert_eq!(r.daemon_minimal().registry(), "docker.io");
}

#[test]
fn manifest_reference_prefers_digest() {
    let r = DockerImageReference::parse(&format!("a/b:t@{}", sha())).unwrap();
    assert_eq!(r.manifest_reference(), sha());
}

#[test]
fn registry_host_port() {
    let hp = |s: &str, insecure| {
        DockerImageReference::parse(s)
            .unwrap()
            .registry_host_port(insecure)
    };
    assert_eq!(
        hp("foo", false),
        ("registry-1.docker.io".into(), "443".into())
    );
    assert_eq!(hp("quay.io/a", true), ("quay.io".into(), "80".into()));
    assert_eq!(
        hp("localhost:5000/a", false),
        ("localhost".into(), "5000".into())
    );
    assert_eq!(hp("[::1]:5000/a", false), ("[::1]".into(), "5000".into()));
}

#[test]
fn builders_validate() {
    let r = DockerImageReference::from_parts("quay.io", "keycloak", "keycloak").unwrap();
    assert_eq!(r.exact(), "quay.io/keycloak/keycloak");
    let r = r.with_tag("20.0").unwrap();
    assert_eq!(r.exact(), "quay.io/keycloak/keycloak:20.0");
    let d = Digest::parse(&sha()).unwrap();
    let r = r.with_id(d.clone());
    assert_eq!(r.id(), Some(&d));
    assert_eq!(
        r.clone().with_registry("127.0.0.1:8080").unwrap().exact(),
        format!("127.0.0.1:8080/keycloak/keycloak@{}", sha())
    );
    assert_eq!(
        DockerImageReference::from_parts("", "", "a/b/c")
            .unwrap()
            .exact(),
        "a/b/c"
    );
    assert_eq!(
        DockerImageReference::from_parts("", "Ns", "x").unwrap_err(),
        ReferenceError::NameContainsUppercase
    );
    assert_eq!(
        DockerImageReference::from_parts("bad host!", "", "x").unwrap_err(),
        ReferenceError::InvalidRegistry
    );
    assert_eq!(
        DockerImageReference::from_parts("", "a/b", "x").unwrap_err(),
        ReferenceError::InvalidFormat
    );
    assert_eq!(
        DockerImageReference::from_parts("", "", "").unwrap_err(),
        ReferenceError::NameEmpty
    );
    assert_eq!(
        r.with_tag("bad tag").unwrap_err(),
        ReferenceError::InvalidTag
    );
    assert_eq!(
        DockerImageReference::from_parts("", "", &"a".repeat(256)).unwrap_err(),
        ReferenceError::NameTooLong
    );
}

#[test]
fn tag_and_path_helpers() {
    assert!(is_valid_tag("20.0"));
    assert!(is_valid_tag("latest"));
    assert!(is_valid_tag("_x"));
    assert!(is_valid_tag(&"a".repeat(128)));
    assert!(!is_valid_tag(&"a".repeat(129)));
    assert!(!is_valid_tag(".x"));
    assert!(!is_valid_tag("-x"));
    assert!(!is_valid_tag(""));
    assert!(!is_valid_tag("a:b"));
    assert!(!is_valid_tag("é"));
    assert!(is_valid_repository_path("a/b-c/d_e.f"));
    assert!(!is_valid_repository_path("A"));
    assert!(is_valid_registry("quay.io:443"));
    assert!(is_valid_registry("[fe80::1]"));
    assert!(!is_valid_registry("quay.io:"));
    assert!(is_registry_docker_hub("index.docker.io"));
}

#[test]
fn reference_serde_roundtrip() {
    let r = DockerImageReference::parse("quay.io/a/b:1").unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, "\"quay.io/a/b:1\"");
    assert_eq!(
        serde_json::from_str::<DockerImageReference>(&json).unwrap(),
        r
    );
    assert!(serde_json::from_str::<DockerImageReference>("\"A\"").is_err());
}
