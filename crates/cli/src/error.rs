//! Every error a command can end with, and how it is printed: server errors exactly
//! as oc and kubectl print them (`Error from server (NotFound): ...`), everything
//! else as `error: ...`. Formatting only; `main` prints and sets the exit code.

use std::collections::BTreeSet;

use kube::core::Status;

use crate::client::ClientError;
use crate::printers::PrintError;
use crate::printers::table::TableError;
use crate::resources::ResourceError;
use crate::tagging::TaggingError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Reaching the server, or what it answered.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A resource type the CLI does not know.
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// A bad output format or template.
    #[error(transparent)]
    Print(#[from] PrintError),
    /// A Table that does not decode.
    #[error(transparent)]
    Table(#[from] TableError),
    /// `moor serve` could not start or stopped with an error.
    #[error(transparent)]
    Serve(#[from] moor_server::serve::ServeError),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    /// A tag source, destination or image that does not work.
    #[error(transparent)]
    Tagging(#[from] TaggingError),
    /// A rollback that cannot be done.
    #[error(transparent)]
    Rollback(#[from] crate::commands::RollbackError),
    /// An import that cannot be asked for.
    #[error(transparent)]
    ImportImage(#[from] crate::commands::ImportImageError),
    /// `--mirror` could not copy an image into moor's registry.
    #[error(transparent)]
    Mirror(#[from] crate::commands::MirrorError),
    /// A role that cannot be added or removed.
    #[error(transparent)]
    Policy(#[from] crate::commands::PolicyError),
    /// `moor login` could not log in.
    #[error(transparent)]
    Login(#[from] crate::commands::LoginError),
    /// `moor registry login` could not log in.
    #[error(transparent)]
    RegistryLogin(#[from] crate::commands::RegistryLoginError),
    /// `moor store copy` could not copy or verify.
    #[error(transparent)]
    Store(#[from] crate::commands::StoreCopyError),
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// The command has already said what went wrong (e.g. `import-image` printed its
    /// per-tag errors); only the exit code is left to set.
    #[error("")]
    Reported,
    /// Several errors, e.g. one per name that was not found.
    #[error("{} errors", .0.len())]
    Many(Vec<CliError>),
}

impl CliError {
    /// The text printed on stderr, without a trailing newline.
    pub fn render(&self) -> String {
        match self {
            CliError::Client(ClientError::Api(status)) => render_status(status),
            CliError::Client(e @ ClientError::Refused { .. }) => format!(
                "error: {e}\nhint: is `moor serve` running? It writes DATA_DIR/kubeconfig; pass it with --kubeconfig or $KUBECONFIG"
            ),
            CliError::Reported => String::new(),
            CliError::Many(errors) => errors
                .iter()
                .map(CliError::render)
                .collect::<Vec<_>>()
                .join("\n"),
            other => {
                let msg = other.to_string();
                if msg.starts_with("error: ") {
                    msg
                } else {
                    format!("error: {msg}")
                }
            }
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        1
    }
}

/// A `metav1.Status` as kubectl's `CheckErr` prints it.
fn render_status(status: &Status) -> String {
    let details = status.details.as_ref();
    match status.reason.as_str() {
        "Invalid" => {
            let Some(d) = details else {
                return "error: The request is invalid".to_string();
            };
            let subject = if !d.kind.is_empty() || !d.name.is_empty() {
                format!("The {} {:?} is invalid", d.kind, d.name)
            } else {
                "The request is invalid".to_string()
            };
            let mut seen = BTreeSet::new();
            let causes: Vec<String> = d
                .causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .filter(|m| seen.insert(m.clone()))
                .collect();
            match causes.as_slice() {
                [] if status.message.is_empty() => format!("error: {subject}"),
                [] => format!("error: {subject}: {}", status.message),
                [one] => format!("error: {subject}: {one}"),
                many => {
                    let lines: Vec<String> = many.iter().map(|m| format!("* {m}")).collect();
                    format!("error: {subject}: \n{}", lines.join("\n"))
                }
            }
        }
        "Unauthorized" => format!(
            "error: You must be logged in to the server ({})",
            status.message
        ),
        "" => format!("Error from server: {}", status.message),
        reason => format!("Error from server ({reason}): {}", status.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn api(status: Status) -> CliError {
        CliError::Client(ClientError::Api(Box::new(status)))
    }

    #[test]
    fn not_found_reads_like_oc() {
        let e = api(Status::failure(
            "imagestreams.image.openshift.io \"x\" not found",
            "NotFound",
        )
        .with_code(404));
        assert_eq!(
            e.render(),
            "Error from server (NotFound): imagestreams.image.openshift.io \"x\" not found"
        );
        let e = api(Status::failure(
            "imagestreams.image.openshift.io \"x\" already exists",
            "AlreadyExists",
        )
        .with_code(409));
        assert_eq!(
            e.render(),
            "Error from server (AlreadyExists): imagestreams.image.openshift.io \"x\" already exists"
        );
        let e = api(Status::failure("boom", "").with_code(500));
        assert_eq!(e.render(), "Error from server: boom");
    }

    #[test]
    fn invalid_lists_causes() {
        let mut status = Status::failure(
            "ImageStream \"Bad\" is invalid: metadata.name: Invalid value",
            "Invalid",
        )
        .with_code(422);
        status.details = Some(StatusDetails {
            name: "Bad".into(),
            group: "image.openshift.io".into(),
            kind: "ImageStream".into(),
            uid: String::new(),
            retry_after_seconds: 0,
            causes: vec![StatusCause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: \"Bad\": must be lowercase".into(),
                field: "metadata.name".into(),
            }],
        });
        assert_eq!(
            api(status.clone()).render(),
            "error: The ImageStream \"Bad\" is invalid: metadata.name: Invalid value: \"Bad\": must be lowercase"
        );
        if let Some(d) = status.details.as_mut() {
            d.causes.push(StatusCause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "spec.tags[0].name".into(),
            });
        }
        assert_eq!(
            api(status).render(),
            "error: The ImageStream \"Bad\" is invalid: \n* metadata.name: Invalid value: \"Bad\": must be lowercase\n* spec.tags[0].name: Required value"
        );
    }

    #[test]
    fn client_side_errors_say_error() {
        let e = CliError::Resource(ResourceError::Unknown("routes".into()));
        assert_eq!(
            e.render(),
            "error: the server doesn't have a resource type \"routes\""
        );
        let e = CliError::Client(ClientError::Refused {
            server: "127.0.0.1:8443".into(),
        });
        assert!(e.render().starts_with(
            "error: The connection to the server 127.0.0.1:8443 was refused - did you specify the right host or port?\nhint: "
        ));
    }
}
