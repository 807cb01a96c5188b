//! Tags that follow a range: the policy kept in a spec tag's annotations
//! (`moor.io/follow-*`) and the choice of the newest matching tag of a repository's
//! tag list, with the semantics of Flux's `ImagePolicy` (`semver`, `numerical`,
//! `alphabetical`, `filterTags.pattern`/`extract`). IO-free.

use std::collections::BTreeMap;

use regex::Regex;
use semver::{Comparator, Op, Prerelease, Version, VersionReq};

use super::TagReference;

/// The semver range a tag follows (Masterminds syntax, as Flux takes it:
/// `>=20.0.0 <20.1.0`, `~1.2`, `1.x`, `>=1 <2 || >=3`, `1.2 - 1.4`).
pub const FOLLOW_SEMVER_ANNOTATION: &str = "moor.io/follow-semver";
/// A regular expression a tag must match to be considered (unanchored, as Flux's
/// `filterTags.pattern`).
pub const FOLLOW_TAG_REGEX_ANNOTATION: &str = "moor.io/follow-tag-regex";
/// What is ordered instead of the whole tag: a replacement template over the regex's
/// groups (`$ts`, `${1}`), as Flux's `filterTags.extract`.
pub const FOLLOW_TAG_EXTRACT_ANNOTATION: &str = "moor.io/follow-tag-extract";
/// `numerical asc|desc` or `alphabetical asc|desc` (the order word defaults to `asc`;
/// `asc` picks the highest, `desc` the lowest, as in Flux).
pub const FOLLOW_ORDER_ANNOTATION: &str = "moor.io/follow-order";
/// `"true"`: pre-release versions count even when the range names none.
pub const FOLLOW_PRERELEASES_ANNOTATION: &str = "moor.io/follow-prereleases";

/// The annotations that make a spec tag followed.
pub const FOLLOW_ANNOTATIONS: [&str; 5] = [
    FOLLOW_SEMVER_ANNOTATION,
    FOLLOW_TAG_REGEX_ANNOTATION,
    FOLLOW_TAG_EXTRACT_ANNOTATION,
    FOLLOW_ORDER_ANNOTATION,
    FOLLOW_PRERELEASES_ANNOTATION,
];

/// Why a follow policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The semver range does not parse.
    #[error("invalid semver range {range:?}: {source}")]
    Range {
        /// The range as given.
        range: String,
        /// The parser's complaint.
        #[source]
        source: semver::Error,
    },
    /// The range uses an operator moor does not support.
    #[error("invalid semver range {range:?}: {message}")]
    Unsupported {
        /// The range as given.
        range: String,
        /// What is not supported.
        message: String,
    },
    /// The tag regex does not compile.
    #[error("invalid tag regex {pattern:?}: {source}")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// The compiler's complaint.
        #[source]
        source: regex::Error,
    },
    /// The order is not `numerical|alphabetical [asc|desc]`, or is combined with a
    /// semver range, or an extract has no regex.
    #[error("invalid follow policy: {0}")]
    Invalid(String),
}

/// How the candidates are ordered.
#[derive(Clone, Debug)]
pub enum Choice {
    /// The highest version in the range.
    SemVer {
        /// The range as given.
        range: String,
        /// Its alternatives (`||`), each a set of comparators that must all hold.
        alternatives: Vec<VersionReq>,
        /// Whether pre-release versions count.
        prereleases: bool,
    },
    /// By value as a number; `descending` picks the lowest.
    Numerical {
        /// `desc`.
        descending: bool,
    },
    /// By bytes; `descending` picks the lowest.
    Alphabetical {
        /// `desc`.
        descending: bool,
    },
}

/// A tag-following policy: an optional filter, then a choice.
#[derive(Clone, Debug)]
pub struct FollowPolicy {
    filter: Option<(Regex, Option<String>)>,
    /// How the filtered tags are ordered.
    pub choice: Choice,
    prereleases_flag: bool,
}

/// Whether `tag` carries a follow policy (valid or not).
pub fn is_followed(tag: &TagReference) -> bool {
    tag.annotations
        .as_ref()
        .is_some_and(|a| FOLLOW_ANNOTATIONS.iter().any(|k| a.contains_key(*k)))
}

impl FollowPolicy {
    /// The policy of a spec tag: `None` when it has no follow annotations.
    pub fn of_tag(tag: &TagReference) -> Result<Option<Self>, FollowError> {
        match &tag.annotations {
            Some(a) => Self::from_annotations(a),
            None => Ok(None),
        }
    }

    /// The policy the `moor.io/follow-*` annotations describe, if any.
    pub fn from_annotations(a: &BTreeMap<String, String>) -> Result<Option<Self>, FollowError> {
        if !FOLLOW_ANNOTATIONS.iter().any(|k| a.contains_key(*k)) {
            return Ok(None);
        }
        let get = |k: &str| a.get(k).map(String::as_str).filter(|v| !v.is_empty());
        Self::new(
            get(FOLLOW_SEMVER_ANNOTATION),
            get(FOLLOW_TAG_REGEX_ANNOTATION),
            get(FOLLOW_TAG_EXTRACT_ANNOTATION),
            get(FOLLOW_ORDER_ANNOTATION),
            get(FOLLOW_PRERELEASES_ANNOTATION) == Some("true"),
        )
        .map(Some)
    }

    /// A policy from its parts (the CLI's flags). Without a range or an order, a regex
    /// orders alphabetically, ascending (Flux's default order).
    pub fn new(
        semver: Option<&str>,
        regex: Option<&str>,
        extract: Option<&str>,
        order: Option<&str>,
        prereleases: bool,
    ) -> Result<Self, FollowError> {
        let filter = match regex {
            Some(p) => Some((
                Regex::new(p).map_err(|source| FollowError::Regex {
                    pattern: p.to_string(),
                    source,
                })?,
                extract.map(str::to_string),
            )),
            None if extract.is_some() => {
                return Err(FollowError::Invalid(
                    "a tag extract needs a tag regex".into(),
                ));
            }
            None => None,
        };
        let choice = match (semver, order) {
            (Some(_), Some(_)) => {
                return Err(FollowError::Invalid(
                    "a semver range and an order exclude each other".into(),
                ));
            }
            (Some(range), None) => {
                let (alternatives, has_pre) = parse_range(range)?;
                Choice::SemVer {
                    range: range.to_string(),
                    alternatives,
                    prereleases: prereleases || has_pre,
                }
            }
            (None, Some(order)) => parse_order(order)?,
            (None, None) if filter.is_some() => Choice::Alphabetical { descending: false },
            (None, None) => {
                return Err(FollowError::Invalid(
                    "give a semver range or a tag regex".into(),
                ));
            }
        };
        Ok(FollowPolicy {
            filter,
            choice,
            prereleases_flag: prereleases,
        })
    }

    /// The annotations that keep this policy on a spec tag.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        if let Some((re, extract)) = &self.filter {
            a.insert(FOLLOW_TAG_REGEX_ANNOTATION.into(), re.as_str().to_string());
            if let Some(e) = extract {
                a.insert(FOLLOW_TAG_EXTRACT_ANNOTATION.into(), e.clone());
            }
        }
        match &self.choice {
            Choice::SemVer { range, .. } => {
                a.insert(FOLLOW_SEMVER_ANNOTATION.into(), range.clone());
            }
            Choice::Numerical { descending } => {
                a.insert(
                    FOLLOW_ORDER_ANNOTATION.into(),
                    order_word("numerical", *descending),
                );
            }
            Choice::Alphabetical { descending } => {
                a.insert(
                    FOLLOW_ORDER_ANNOTATION.into(),
                    order_word("alphabetical", *descending),
                );
            }
        }
        if self.prereleases_flag {
            a.insert(FOLLOW_PRERELEASES_ANNOTATION.into(), "true".into());
        }
        a
    }

    /// The `moor tag` flags that give this policy (for "resume with" hints).
    pub fn flags(&self) -> String {
        let mut f = Vec::new();
        match &self.choice {
            Choice::SemVer { range, .. } => f.push(format!("--semver '{range}'")),
            Choice::Numerical { descending } => {
                f.push(format!("--order {}", order_word("numerical", *descending)))
            }
            Choice::Alphabetical { descending } => f.push(format!(
                "--order {}",
                order_word("alphabetical", *descending)
            )),
        }
        if let Some((re, extract)) = &self.filter {
            f.push(format!("--tag-regex '{}'", re.as_str()));
            if let Some(e) = extract {
                f.push(format!("--tag-extract '{e}'"));
            }
        }
        if self.prereleases_flag {
            f.push("--include-prereleases".into());
        }
        f.join(" ")
    }

    /// The policy in words, for describe: `semver >=20.0.0 <20.1.0`, ...
    pub fn summary(&self) -> String {
        let mut s = match &self.choice {
            Choice::SemVer {
                range, prereleases, ..
            } => format!(
                "semver {range}{}",
                if *prereleases {
                    " (pre-releases included)"
                } else {
                    ""
                }
            ),
            Choice::Numerical { descending } => order_word("numerical", *descending),
            Choice::Alphabetical { descending } => order_word("alphabetical", *descending),
        };
        if let Some((re, extract)) = &self.filter {
            s.push_str(&format!(" of tags matching {}", re.as_str()));
            if let Some(e) = extract {
                s.push_str(&format!(" (ordered by {e})"));
            }
        }
        s
    }

    /// The tag of `tags` the policy picks: the highest (or, `desc`, lowest) of those
    /// that pass the filter and parse for the choice; `None` when none do. Ties go to
    /// the greatest tag string, so the answer does not depend on the list's order.
    pub fn select<'a, I>(&self, tags: I) -> Option<&'a str>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let candidates = tags
            .into_iter()
            .filter_map(|t| self.value_of(t).map(|v| (v, t)));
        match &self.choice {
            Choice::SemVer {
                alternatives,
                prereleases,
                ..
            } => candidates
                .filter_map(|(v, t)| lenient_version(&v).map(|v| (v, t)))
                .filter(|(v, _)| in_range(alternatives, *prereleases, v))
                .max_by(|(a, ta), (b, tb)| a.cmp(b).then(ta.cmp(tb)))
                .map(|(_, t)| t),
            Choice::Numerical { descending } => candidates
                .filter_map(|(v, t)| v.trim().parse::<f64>().ok().map(|n| (n, t)))
                .filter(|(n, _)| n.is_finite())
                .max_by(|(a, ta), (b, tb)| {
                    let by_value = if *descending {
                        b.total_cmp(a)
                    } else {
                        a.total_cmp(b)
                    };
                    by_value.then(ta.cmp(tb))
                })
                .map(|(_, t)| t),
            Choice::Alphabetical { descending } => candidates
                .max_by(|(a, ta), (b, tb)| {
                    let by_value = if *descending { b.cmp(a) } else { a.cmp(b) };
                    by_value.then(ta.cmp(tb))
                })
                .map(|(_, t)| t),
        }
    }

    /// What is ordered for `tag`: the tag, or its extract; `None` when the filter
    /// refuses it.
    fn value_of(&self, tag: &str) -> Option<String> {
        match &self.filter {
            None => Some(tag.to_string()),
            Some((re, extract)) => {
                let caps = re.captures(tag)?;
                Some(match extract {
                    Some(e) => {
                        let mut out = String::new();
                        caps.expand(e, &mut out);
                        out
                    }
                    None => tag.to_string(),
                })
            }
        }
    }
}

fn order_word(kind: &str, descending: bool) -> String {
    format!("{kind} {}", if descending { "desc" } else { "asc" })
}

fn parse_order(order: &str) -> Result<Choice, FollowError> {
    let words: Vec<&str> = order.split_whitespace().collect();
    let descending = match words.get(1).copied() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return Err(FollowError::Invalid(format!(
                "order {o:?} is neither asc nor desc"
            )));
        }
    };
    if words.len() > 2 {
        return Err(FollowError::Invalid(format!(
            "order {order:?} has extra words"
        )));
    }
    match words.first().copied() {
        Some("numerical" | "numeric") => Ok(Choice::Numerical { descending }),
        Some("alphabetical") => Ok(Choice::Alphabetical { descending }),
        _ => Err(FollowError::Invalid(format!(
            "order {order:?} is neither numerical nor alphabetical"
        ))),
    }
}

/// Whether `v` is in one of the alternatives. With pre-releases allowed a pre-release
/// is compared by order alone (the semver crate otherwise admits one only when a
/// comparator names its exact `major.minor.patch`): a comparator `>=M.m.p-0` is
/// added, which it always meets and which satisfies that rule.
fn in_range(alternatives: &[VersionReq], prereleases: bool, v: &Version) -> bool {
    if v.pre.is_empty() {
        return alternatives.iter().any(|r| r.matches(v));
    }
    if !prereleases {
        return false;
    }
    let floor = Comparator {
        op: Op::GreaterEq,
        major: v.major,
        minor: Some(v.minor),
        patch: Some(v.patch),
        pre: Prerelease::new("0").unwrap_or(Prerelease::EMPTY),
    };
    alternatives.iter().any(|r| {
        let mut r = r.clone();
        r.comparators.push(floor.clone());
        r.matches(v)
    })
}

/// A tag as a version, leniently as Masterminds' `NewVersion`: a `v` prefix and
/// missing minor or patch numbers (`v1.2` is 1.2.0) are accepted.
pub fn lenient_version(tag: &str) -> Option<Version> {
    let s = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let parts = core.split('.').count();
    if parts == 0
        || parts > 3
        || core
            .split('.')
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(3 - parts));
    Version::parse(&padded).ok()
}

/// A Masterminds range as semver-crate requirements, and whether it names a
/// pre-release. Space or comma separated comparators must all hold, `||` separates
/// alternatives, `a - b` is `>=a, <=b`, a bare version is exact (not caret, as Cargo
/// reads it), and a `v` prefix is dropped.
fn parse_range(range: &str) -> Result<(Vec<VersionReq>, bool), FollowError> {
    let unsupported = |message: &str| FollowError::Unsupported {
        range: range.to_string(),
        message: message.to_string(),
    };
    let mut alternatives = Vec::new();
    let mut has_pre = false;
    for alt in range.split("||") {
        let tokens: Vec<&str> = alt
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .collect();
        let mut comparators = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let mut t = tokens[i].to_string();
            if t.starts_with("!=") {
                return Err(unsupported("`!=` is not supported"));
            }
            if matches!(t.as_str(), ">=" | "<=" | ">" | "<" | "=" | "~" | "^" | "~>") {
                let next = tokens
                    .get(i + 1)
                    .ok_or_else(|| unsupported("an operator without a version"))?;
                t.push_str(next);
                i += 1;
            }
            if tokens.get(i + 1) == Some(&"-") {
                let hi = tokens
                    .get(i + 2)
                    .ok_or_else(|| unsupported("a hyphen range without its upper end"))?;
                comparators.push(format!(">={}", strip_v(&t)));
                comparators.push(format!("<={}", strip_v(hi)));
                i += 3;
                continue;
            }
            let op_len = t
                .find(|c: char| c.is_ascii_alphanumeric() || c == '*')
                .unwrap_or(t.len());
            let (op, version) = t.split_at(op_len);
            let op = match op {
                "" => "=",
                "~>" => "~",
                o => o,
            };
            comparators.push(format!("{op}{}", strip_v(version)));
            i += 1;
        }
        if comparators.is_empty() {
            return Err(unsupported("an empty alternative"));
        }
        let joined = comparators.join(", ");
        let req = VersionReq::parse(&joined).map_err(|source| FollowError::Range {
            range: range.to_string(),
            source,
        })?;
        has_pre |= req.comparators.iter().any(|c| !c.pre.is_empty());
        alternatives.push(req);
    }
    Ok((alternatives, has_pre))
}

fn strip_v(v: &str) -> &str {
    v.strip_prefix(['v', 'V']).unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn semver(range: &str) -> FollowPolicy {
        FollowPolicy::new(Some(range), None, None, None, false).expect("policy")
    }

    #[test]
    fn semver_picks_the_highest_release_in_range() {
        let p = semver(">=20.0.0 <20.1.0");
        let tags = [
            "20.0.1",
            "20.0.3",
            "20.1.0",
            "20.0.4-rc.1",
            "latest",
            "v20.0.2",
        ];
        assert_eq!(p.select(tags), Some("20.0.3"));
        assert_eq!(p.select(["20.0.1", "20.0.5", "20.0.3"]), Some("20.0.5"));
        assert_eq!(p.select(["19.0.0", "latest"]), None);
    }

    #[test]
    fn pre_releases_count_when_the_range_names_one_or_when_asked() {
        let tags = ["20.0.3", "20.0.4-rc.1", "20.1.0"];
        assert_eq!(
            semver(">=20.0.0-0 <20.1.0").select(tags),
            Some("20.0.4-rc.1")
        );
        let asked = FollowPolicy::new(Some(">=20.0.0 <20.1.0"), None, None, None, true).unwrap();
        assert_eq!(asked.select(tags), Some("20.0.4-rc.1"));
        assert_eq!(semver(">=20.0.0 <20.1.0").select(tags), Some("20.0.3"));
    }

    #[test]
    fn masterminds_range_forms_are_read() {
        assert_eq!(semver("1.2.3").select(["1.2.3", "1.2.4"]), Some("1.2.3"));
        assert_eq!(semver("~1.2").select(["1.2.9", "1.3.0"]), Some("1.2.9"));
        assert_eq!(semver("1.x").select(["1.9.0", "2.0.0"]), Some("1.9.0"));
        assert_eq!(semver(">= 1, < 2").select(["1.5", "2.0"]), Some("1.5"));
        assert_eq!(
            semver("1.0 - 1.4").select(["1.4.1", "1.5.0"]),
            Some("1.4.1")
        );
        assert_eq!(
            semver("<1 || >=3").select(["0.9.0", "2.0.0"]),
            Some("0.9.0")
        );
        assert!(FollowPolicy::new(Some("!=1.0"), None, None, None, false).is_err());
        assert!(FollowPolicy::new(Some(">=a.b"), None, None, None, false).is_err());
    }

    #[test]
    fn regex_extract_and_numerical_order_pick_the_newest_build() {
        let p = FollowPolicy::new(
            None,
            Some(r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$"),
            Some("$ts"),
            Some("numerical asc"),
            false,
        )
        .unwrap();
        let tags = [
            "main-abc-900",
            "main-def-1000",
            "dev-aaa-5000",
            "main-bbb-99",
        ];
        assert_eq!(p.select(tags), Some("main-def-1000"));
        let desc = FollowPolicy::new(
            None,
            Some(r"-(\d+)$"),
            Some("$1"),
            Some("numerical desc"),
            false,
        )
        .unwrap();
        assert_eq!(desc.select(tags), Some("main-bbb-99"));
    }

    #[test]
    fn alphabetical_asc_picks_the_last_and_desc_the_first() {
        let asc = FollowPolicy::new(None, Some("^rel-"), None, None, false).unwrap();
        assert_eq!(asc.select(["rel-a", "rel-c", "rel-b", "x"]), Some("rel-c"));
        let desc =
            FollowPolicy::new(None, Some("^rel-"), None, Some("alphabetical desc"), false).unwrap();
        assert_eq!(desc.select(["rel-a", "rel-c", "rel-b"]), Some("rel-a"));
    }

    #[test]
    fn annotations_round_trip_and_bad_policies_are_refused() {
        let p = FollowPolicy::new(Some(">=1.0.0 <2"), Some("^v"), None, None, true).unwrap();
        let again = FollowPolicy::from_annotations(&p.annotations())
            .unwrap()
            .unwrap();
        assert_eq!(again.annotations(), p.annotations());
        assert_eq!(
            p.flags(),
            "--semver '>=1.0.0 <2' --tag-regex '^v' --include-prereleases"
        );
        assert!(FollowPolicy::new(Some("1"), None, None, Some("numerical"), false).is_err());
        assert!(FollowPolicy::new(None, None, Some("$1"), None, false).is_err());
        assert!(FollowPolicy::new(None, Some("("), None, None, false).is_err());
        assert!(FollowPolicy::new(None, None, None, Some("sideways"), false).is_err());
        assert!(
            FollowPolicy::from_annotations(&BTreeMap::new())
                .unwrap()
                .is_none()
        );
    }
}
