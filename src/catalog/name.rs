//! Names of sources, tables, jobs and savepoints: one rule where a name enters (CREATE ...,
//! RESTORE JOB), and one safe spelling where a name becomes part of a path.
//!
//! The rule is Postgres' identifier shape, which every tool quotes and displays without surprises:
//! a letter or `_`, then letters, digits, `_`, `$` or `-`, at most 63 bytes (Postgres' NAMEDATALEN
//! minus one; Postgres truncates longer names, Weir refuses them). Quoting keeps the case.
//!
//! A name that reaches the file system goes through `data_dir::path_component` as well, so a name
//! that predates the rule (an old catalog) still maps to one directory entry inside its parent.

use crate::error::{Error, Result, UserErrorKind};

/// The longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 63;

/// Checks a new `what` (source, table, job, savepoint) name against the rule above.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(Error::user(UserErrorKind::InvalidName, format!("a {what} name cannot be empty")));
    };
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::user(
            UserErrorKind::NameTooLong,
            format!(
                "{what} name \"{}...\" is too long ({} bytes); names have at most {MAX_NAME_BYTES}",
                name.chars().take(20).collect::<String>(),
                name.len()
            ),
        ));
    }
    let valid_start = first.is_alphabetic() || first == '_';
    if !valid_start || !chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '-')) {
        return Err(Error::user(
            UserErrorKind::InvalidName,
            format!(
                "invalid {what} name \"{}\": a name starts with a letter or _ and continues with letters, digits, _, $ or -",
                name.escape_default()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(result: Result<()>) -> Option<&'static str> {
        result.err().map(|e| e.sqlstate())
    }

    #[test]
    fn the_rule() {
        for good in ["j", "_j", "job_1", "Q5", "my-job", "a$b", "größe", &"x".repeat(63)] {
            assert_eq!(kind(check_name("job", good)), None, "{good}");
        }
        for bad in ["..", "../x", "/", "a/b", ".", "", "1job", "-j", "a b", "a\0b", "a.b", "a\\b", "$j"] {
            assert_eq!(kind(check_name("job", bad)), Some("42602"), "{bad:?}");
        }
        assert_eq!(kind(check_name("job", &"x".repeat(64))), Some("42622"));
        let message = check_name("job", "../x").unwrap_err().to_string();
        assert!(message.contains("invalid job name \"../x\""), "{message}");
    }
}
