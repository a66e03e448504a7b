//! Postgres run-time parameters: the settings Postgres clients SET, SHOW and RESET on their own
//! (drivers on connect, pools on reset, ORMs before a query). Weir keeps them per session; most
//! change nothing in Weir, `statement_timeout` is honoured. Weir's own job settings are separate
//! (`SET 'parallelism' = '2'`).

use std::time::Duration;

use crate::error::{Error, Result, UserErrorKind};

/// The Postgres version Weir answers as (clients choose their SQL by it), in `server_version` and
/// `version()`.
pub const POSTGRES_VERSION: &str = "16.0";

/// One run-time parameter: its name as Postgres spells it (SHOW's column name), Weir's default,
/// and whether a session may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresSetting {
    pub name: &'static str,
    pub default: &'static str,
    pub settable: bool,
}

const fn setting(name: &'static str, default: &'static str) -> PostgresSetting {
    PostgresSetting {
        name,
        default,
        settable: true,
    }
}

const fn fixed(name: &'static str, default: &'static str) -> PostgresSetting {
    PostgresSetting {
        name,
        default,
        settable: false,
    }
}

/// Every parameter Weir knows. Reported at start-up (`server_version`, ...) and by SHOW.
pub const POSTGRES_SETTINGS: &[PostgresSetting] = &[
    fixed("server_version", "16.0 (Weir)"),
    fixed("server_version_num", "160000"),
    fixed("server_encoding", "UTF8"),
    fixed("integer_datetimes", "on"),
    fixed("max_identifier_length", "63"),
    fixed("max_index_keys", "32"),
    // Weir compares text byte by byte.
    fixed("lc_collate", "C"),
    fixed("lc_ctype", "C"),
    fixed("is_superuser", "on"),
    fixed("default_table_access_method", "heap"),
    setting("application_name", ""),
    setting("client_encoding", "UTF8"),
    setting("DateStyle", "ISO, MDY"),
    setting("IntervalStyle", "postgres"),
    setting("TimeZone", "UTC"),
    setting("search_path", "\"$user\", public"),
    setting("statement_timeout", "0"),
    setting("lock_timeout", "0"),
    setting("idle_in_transaction_session_timeout", "0"),
    setting("idle_session_timeout", "0"),
    setting("extra_float_digits", "1"),
    setting("bytea_output", "hex"),
    setting("client_min_messages", "notice"),
    setting("standard_conforming_strings", "on"),
    setting("transaction_isolation", "read committed"),
    setting("default_transaction_isolation", "read committed"),
    setting("transaction_read_only", "off"),
    setting("default_transaction_read_only", "off"),
    setting("transaction_deferrable", "off"),
    setting("default_transaction_deferrable", "off"),
    setting("synchronous_commit", "on"),
    setting("jit", "off"),
    setting("work_mem", "4MB"),
    setting("row_security", "on"),
];

/// The parameter called `name` (any case).
pub fn postgres_setting(name: &str) -> Option<&'static PostgresSetting> {
    POSTGRES_SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// The parameter called `name`, or Postgres' error for an unknown one.
pub fn known_setting(name: &str) -> Result<&'static PostgresSetting> {
    postgres_setting(name).ok_or_else(|| {
        Error::user(
            UserErrorKind::UndefinedName,
            format!("unrecognized configuration parameter \"{name}\""),
        )
    })
}

impl PostgresSetting {
    /// `value` as this parameter stores and shows it; an error for a value Postgres refuses.
    pub fn normalize(&self, value: &str) -> Result<String> {
        if !self.settable {
            return Err(Error::user(
                UserErrorKind::ReadOnlySetting,
                format!("parameter \"{}\" cannot be changed", self.name),
            ));
        }
        if self.is_duration() {
            return Ok(show_milliseconds(parse_milliseconds(self.name, value)?));
        }
        Ok(value.to_string())
    }

    /// Time parameters, given in milliseconds unless a unit says otherwise.
    fn is_duration(&self) -> bool {
        self.name.ends_with("_timeout")
    }
}

/// A time parameter's value (`5000`, `'5s'`, `'2min'`; 0 is off) as a duration; `None` when off.
pub fn timeout_of(value: &str) -> Option<Duration> {
    parse_milliseconds("", value).ok().filter(|ms| *ms > 0).map(Duration::from_millis)
}

fn parse_milliseconds(name: &str, value: &str) -> Result<u64> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(value.len());
    let (number, unit) = (value[..split].trim(), value[split..].trim());
    let invalid = || {
        Error::user(
            UserErrorKind::InvalidParameter,
            format!("invalid value for parameter \"{name}\": \"{value}\""),
        )
    };
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let scale = match unit {
        "us" => 0.001,
        "" | "ms" => 1.0,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => {
            return Err(Error::user(
                UserErrorKind::InvalidParameter,
                format!(
                    "invalid value for parameter \"{name}\": \"{value}\"\nHINT: Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\"."
                ),
            ));
        }
    };
    let ms = (number * scale).round();
    if !(0.0..=f64::from(i32::MAX)).contains(&ms) {
        return Err(invalid());
    }
    Ok(ms as u64)
}

/// Milliseconds as Postgres shows them: in the largest unit that divides them.
fn show_milliseconds(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1000, "s")];
    if ms == 0 {
        return "0".to_string();
    }
    UNITS
        .iter()
        .find(|(size, _)| ms.is_multiple_of(*size))
        .map_or_else(|| format!("{ms}ms"), |(size, unit)| format!("{}{unit}", ms / size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_and_show_as_postgres_does() {
        let timeout = known_setting("STATEMENT_TIMEOUT").expect("known");
        let cases = [
            ("0", "0"),
            ("1500", "1500ms"),
            ("2s", "2s"),
            ("2000", "2s"),
            ("1.5s", "1500ms"),
            ("120 s", "2min"),
            ("1h", "1h"),
        ];
        for (given, shown) in cases {
            assert_eq!(timeout.normalize(given).expect(given), shown);
        }
        assert_eq!(timeout_of("2min"), Some(Duration::from_secs(120)));
        assert_eq!(timeout_of("0"), None);
        let error = timeout.normalize("5 parsecs").expect_err("unit");
        assert!(
            error
                .to_string()
                .starts_with("invalid value for parameter \"statement_timeout\": \"5 parsecs\"")
        );
        assert_eq!(timeout.normalize("-1").expect_err("negative").sqlstate(), "22023");
    }

    #[test]
    fn unknown_and_fixed_parameters_are_refused_as_postgres_refuses_them() {
        assert_eq!(known_setting("no_such").expect_err("unknown").sqlstate(), "42704");
        let error = known_setting("server_version").expect("known").normalize("17").expect_err("fixed");
        assert_eq!(error.to_string(), "parameter \"server_version\" cannot be changed");
    }
}
