//! kube-apiserver's static token file (`--token-auth-file`): CSV records
//! `token,user,uid[,"group1,group2"]`. Parsing follows kube's `tokenfile.NewCSV` on
//! Go's `encoding/csv` with its defaults: blank lines are skipped, there are no
//! comment lines (a `#` line is a record like any other, and one of fewer than three
//! columns is an error), fields may be quoted (`""` is a quote inside quotes, and
//! quoted fields may span lines), a quote inside an unquoted field or text after a
//! closing quote is an error, records may have any number of fields from three up,
//! a record with an empty token is skipped and a repeated token's last record wins.
//! Tokens are kept only as SHA-256 hashes.
//!
//! Hand-written rather than the `csv` crate because that crate accepts what Go's
//! reader refuses (bare and stray quotes), and kube-apiserver refuses to start on
//! such a file; for a credentials file the refusal matters more than the few lines.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::attributes::UserInfo;

/// A token file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenFileError {
    /// A quote inside an unquoted field (Go's `ErrBareQuote`).
    #[error("line {line}: bare \" in non-quoted-field")]
    BareQuote {
        /// 1-based line.
        line: usize,
    },
    /// Text after a closing quote, or a quote never closed (Go's `ErrQuote`).
    #[error("line {line}: extraneous or missing \" in quoted-field")]
    Quote {
        /// 1-based line.
        line: usize,
    },
    /// A record of fewer than three fields.
    #[error(
        "line {line}: token file must have at least 3 columns (token, user name, user uid), found {found}"
    )]
    TooFewColumns {
        /// 1-based line the record starts on.
        line: usize,
        /// Fields found.
        found: usize,
    },
}

/// The SHA-256 of a token: the only form in which tokens are kept.
pub type TokenHash = [u8; 32];

/// Hash a token for lookup.
pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The users of a token file, by token hash.
#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    users: HashMap<TokenHash, UserInfo>,
}

impl TokenFile {
    /// Parse the file's text. Users get the name, uid and groups of their record
    /// (as kube, a fourth field that is empty is one group named `""`); the caller
    /// adds `system:authenticated`, as kube's authenticator chain does.
    pub fn parse(text: &str) -> Result<Self, TokenFileError> {
        let mut users = HashMap::new();
        for (line, record) in read_records(text)? {
            if record.len() < 3 {
                return Err(TokenFileError::TooFewColumns {
                    line,
                    found: record.len(),
                });
            }
            if record[0].is_empty() {
                continue;
            }
            let groups = match record.get(3) {
                Some(g) => g.split(',').map(str::to_owned).collect(),
                None => Vec::new(),
            };
            let user = UserInfo {
                name: record[1].clone(),
                uid: record[2].clone(),
                groups,
                ..UserInfo::default()
            };
            users.insert(token_hash(&record[0]), user);
        }
        Ok(TokenFile { users })
    }

    /// The user a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<&UserInfo> {
        self.users.get(&token_hash(token))
    }

    /// The user with a given token hash.
    pub fn get(&self, hash: &TokenHash) -> Option<&UserInfo> {
        self.users.get(hash)
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Go's `encoding/csv` reader with its default settings: the records of `text`, each
/// with the 1-based line it starts on.
fn read_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, TokenFileError> {
    let text = text.replace("\r\n", "\n");
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        if chars.peek() == Some(&'\n') {
            chars.next();
            line += 1;
            continue;
        }
        let start = line;
        let mut fields = Vec::new();
        loop {
            let mut field = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        None => return Err(TokenFileError::Quote { line }),
                        Some('"') => match chars.peek() {
                            Some('"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some(',') | Some('\n') | None => break,
                            Some(_) => return Err(TokenFileError::Quote { line }),
                        },
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    match c {
                        ',' | '\n' => break,
                        '"' => return Err(TokenFileError::BareQuote { line }),
                        c => {
                            field.push(c);
                            chars.next();
                        }
                    }
                }
            }
            fields.push(field);
            match chars.next() {
                Some(',') => continue,
                Some('\n') => {
                    line += 1;
                    break;
                }
                _ => break,
            }
        }
        records.push((start, fields));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_tokenfile_reads_token_user_uid_and_quoted_groups() {
        let f = TokenFile::parse("t1,alice,uid-1,\"dev,ops\"\nt2,bob,uid-2\n").unwrap();
        let alice = f.authenticate("t1").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "uid-1");
        assert_eq!(alice.groups, ["dev", "ops"]);
        assert!(f.authenticate("t2").unwrap().groups.is_empty());
        assert!(f.authenticate("t3").is_none());
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn go_csv_skips_blank_lines_and_accepts_crlf_and_no_final_newline() {
        let f = TokenFile::parse("\n\nt1,alice,1\r\n\r\nt2,bob,2").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f.authenticate("t2").unwrap().uid, "2");
    }

    #[test]
    fn kube_tokenfile_has_no_comments_so_a_hash_line_is_a_short_record() {
        assert_eq!(
            TokenFile::parse("# tokens\nt1,alice,1\n").unwrap_err(),
            TokenFileError::TooFewColumns { line: 1, found: 1 }
        );
        // A comment-looking line with three fields is a token like any other.
        let f = TokenFile::parse("#t,u,1\n").unwrap();
        assert_eq!(f.authenticate("#t").unwrap().name, "u");
    }

    #[test]
    fn kube_tokenfile_needs_three_columns() {
        assert_eq!(
            TokenFile::parse("t1,alice,1\nt2,bob\n").unwrap_err(),
            TokenFileError::TooFewColumns { line: 2, found: 2 }
        );
    }

    #[test]
    fn kube_tokenfile_skips_empty_tokens_and_last_duplicate_wins() {
        let f = TokenFile::parse(",nobody,0\nt,first,1\nt,second,2\n").unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f.authenticate("t").unwrap().name, "second");
        assert!(f.authenticate("").is_none());
    }

    #[test]
    fn go_csv_quotes_escape_span_lines_and_refuse_strays() {
        let f = TokenFile::parse("\"a\"\"b\",\"multi\nline\",1\n").unwrap();
        assert_eq!(f.authenticate("a\"b").unwrap().name, "multi\nline");
        assert_eq!(
            TokenFile::parse("t\"x,u,1\n").unwrap_err(),
            TokenFileError::BareQuote { line: 1 }
        );
        assert_eq!(
            TokenFile::parse("\"t\"x,u,1\n").unwrap_err(),
            TokenFileError::Quote { line: 1 }
        );
        assert_eq!(
            TokenFile::parse("\"t,u,1\n").unwrap_err(),
            TokenFileError::Quote { line: 2 }
        );
        // A leading space makes a field unquoted, so its quote is bare.
        assert_eq!(
            TokenFile::parse("t,u,1, \"g\"\n").unwrap_err(),
            TokenFileError::BareQuote { line: 1 }
        );
    }

    #[test]
    fn kube_tokenfile_splits_groups_field_on_commas_keeping_empties() {
        let f = TokenFile::parse("t,u,1,\nt2,u2,2,a,ignored\n").unwrap();
        assert_eq!(f.authenticate("t").unwrap().groups, [""]);
        assert_eq!(f.authenticate("t2").unwrap().groups, ["a"]);
    }

    /// A field as Go's `csv.Writer` writes it: quoted when it holds a comma, quote,
    /// newline or carriage return, or starts with a space.
    fn go_csv_field(f: &str) -> String {
        if f.contains([',', '"', '\n', '\r']) || f.starts_with(' ') {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_owned()
        }
    }

    proptest::proptest! {
        #[test]
        fn records_written_as_go_writes_them_read_back(
            records in proptest::collection::vec(
                (
                    "[a-zA-Z0-9\", \n-]{1,12}",
                    "[a-z:, \"-]{0,8}",
                    "[0-9\n]{0,4}",
                    proptest::collection::vec("[a-z:-]{1,6}", 0..3),
                ),
                1..6,
            )
        ) {
            let mut text = String::new();
            for (token, name, uid, groups) in &records {
                let mut fields = vec![go_csv_field(token), go_csv_field(name), go_csv_field(uid)];
                if !groups.is_empty() {
                    fields.push(go_csv_field(&groups.join(",")));
                }
                text.push_str(&fields.join(","));
                text.push('\n');
            }
            let file = TokenFile::parse(&text).unwrap();
            for (token, ..) in &records {
                // A repeated token's last record wins.
                let Some(last) = records.iter().rev().find(|r| r.0 == *token) else { continue };
                let user = file.authenticate(token).unwrap();
                proptest::prop_assert_eq!((&user.name, &user.uid, &user.groups), (&last.1, &last.2, &last.3));
            }
        }
    }

    #[test]
    fn tokens_are_kept_only_as_hashes() {
        let f = TokenFile::parse("s3cret-token,u,1\n").unwrap();
        assert!(!format!("{f:?}").contains("s3cret-token"));
        assert_eq!(f.get(&token_hash("s3cret-token")).unwrap().name, "u");
    }
}
