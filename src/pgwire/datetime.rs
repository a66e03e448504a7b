//! Timestamps, times and intervals on the wire, in Postgres' text form: whole seconds print
//! without a fraction and a fraction without trailing zeros (`2024-01-01 00:00:00`,
//! `12:00:00.25`, `1 day 02:00:03.5`), a `timestamptz` with its offset (`+00`: the session's
//! TimeZone is UTC). pgwire's own text form always prints six fraction digits, which tools that
//! show the text as received (pgcli, psql) would show.

use std::error::Error as StdError;
use std::fmt::Write;

use ::pgwire::types::ToSqlText;
use ::pgwire::types::format::FormatOptions;
use bytes::BytesMut;
use chrono::{DateTime, NaiveDateTime, NaiveTime, Timelike, Utc};
use postgres_types::{IsNull, Kind, ToSql, Type, to_sql_checked};

/// A `timestamp` (`zoned`: a `timestamptz`, in UTC).
#[derive(Debug, Clone, Copy)]
pub(super) struct PgTimestamp {
    pub utc: DateTime<Utc>,
    pub zoned: bool,
}

/// A `time`.
#[derive(Debug, Clone, Copy)]
pub(super) struct PgTime(pub NaiveTime);

/// An `interval`: months, days and microseconds, kept apart as Postgres keeps them.
#[derive(Debug, Clone, Copy)]
pub(super) struct PgInterval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

/// `.5`, `.000123`, or nothing for whole seconds.
fn fraction(nanos: u32) -> String {
    let micros = nanos % 1_000_000_000 / 1000;
    if micros == 0 {
        return String::new();
    }
    format!(".{micros:06}").trim_end_matches('0').to_string()
}

/// `text` as a value, or as an element of an array, where Postgres quotes an element with a space
/// in it (`{"2024-01-01 00:00:00","1 day"}`); these texts hold no quote or backslash to escape.
fn put_text(ty: &Type, text: &str, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
    if matches!(ty.kind(), Kind::Array(_)) && text.contains(' ') {
        write!(out, "\"{text}\"")?;
    } else {
        out.write_str(text)?;
    }
    Ok(IsNull::No)
}

impl ToSqlText for PgTimestamp {
    fn to_sql_text(&self, ty: &Type, out: &mut BytesMut, _: &FormatOptions) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let naive: NaiveDateTime = self.utc.naive_utc();
        let offset = if self.zoned { "+00" } else { "" };
        let text = format!("{}{}{offset}", naive.format("%Y-%m-%d %H:%M:%S"), fraction(naive.nanosecond()));
        put_text(ty, &text, out)
    }
}

impl ToSql for PgTimestamp {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.zoned {
            true => self.utc.to_sql(ty, out),
            false => self.utc.naive_utc().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }

    to_sql_checked!();
}

impl ToSqlText for PgTime {
    fn to_sql_text(&self, _: &Type, out: &mut BytesMut, _: &FormatOptions) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        write!(out, "{}{}", self.0.format("%H:%M:%S"), fraction(self.0.nanosecond()))?;
        Ok(IsNull::No)
    }
}

impl ToSql for PgTime {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIME
    }

    to_sql_checked!();
}

impl ToSqlText for PgInterval {
    /// IntervalStyle `postgres`: `1 year 2 mons 3 days 04:05:06.5`, `-1 days`, `00:00:00`.
    fn to_sql_text(&self, ty: &Type, out: &mut BytesMut, _: &FormatOptions) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let plural = |n: i32| if n == 1 { "" } else { "s" };
        let mut parts = Vec::new();
        let (years, months) = (self.months / 12, self.months % 12);
        if years != 0 {
            parts.push(format!("{years} year{}", plural(years)));
        }
        if months != 0 {
            parts.push(format!("{months} mon{}", plural(months)));
        }
        if self.days != 0 {
            parts.push(format!("{} day{}", self.days, plural(self.days)));
        }
        if self.micros != 0 || parts.is_empty() {
            let sign = if self.micros < 0 { "-" } else { "" };
            let micros = self.micros.unsigned_abs();
            let (hours, minutes, seconds) = (micros / 3_600_000_000, micros / 60_000_000 % 60, micros / 1_000_000 % 60);
            // `fraction` takes nanoseconds within a second.
            let nanos = u32::try_from(micros % 1_000_000 * 1000).unwrap_or(0);
            parts.push(format!("{sign}{hours:02}:{minutes:02}:{seconds:02}{}", fraction(nanos)));
        }
        put_text(ty, &parts.join(" "), out)
    }
}

impl ToSql for PgInterval {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        ToSql::to_sql(&pg_interval::Interval::new(self.months, self.days, self.micros), ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &impl ToSqlText) -> String {
        let mut out = BytesMut::new();
        value
            .to_sql_text(&Type::TIMESTAMP, &mut out, &FormatOptions::default())
            .expect("text");
        String::from_utf8(out.to_vec()).expect("utf8")
    }

    #[test]
    fn fractions_print_as_postgres_prints_them() {
        let at = |micros| DateTime::from_timestamp_micros(micros).expect("in range");
        assert_eq!(
            text(&PgTimestamp {
                utc: at(1_704_067_200_000_000),
                zoned: false
            }),
            "2024-01-01 00:00:00"
        );
        assert_eq!(
            text(&PgTimestamp {
                utc: at(1_704_067_200_500_000),
                zoned: false
            }),
            "2024-01-01 00:00:00.5"
        );
        assert_eq!(
            text(&PgTimestamp {
                utc: at(1_704_067_200_000_123),
                zoned: true
            }),
            "2024-01-01 00:00:00.000123+00"
        );
        let noon = NaiveTime::from_hms_micro_opt(12, 0, 0, 250_000).expect("valid");
        assert_eq!(text(&PgTime(noon)), "12:00:00.25");
    }

    #[test]
    fn intervals_print_in_the_postgres_style() {
        let interval = |months, days, micros| text(&PgInterval { months, days, micros });
        assert_eq!(interval(0, 1, 7_203_500_000), "1 day 02:00:03.5");
        assert_eq!(interval(14, 3, 0), "1 year 2 mons 3 days");
        assert_eq!(interval(-12, -1, 0), "-1 years -1 days");
        assert_eq!(interval(0, 0, -3_600_000_000), "-01:00:00");
        assert_eq!(interval(0, 0, 0), "00:00:00");
    }

    #[test]
    fn array_elements_with_a_space_are_quoted() {
        let at = DateTime::from_timestamp_micros(1_704_067_200_500_000).expect("in range");
        let elements = vec![Some(PgTimestamp { utc: at, zoned: false }), None];
        let mut out = BytesMut::new();
        elements
            .to_sql_text(&Type::TIMESTAMP_ARRAY, &mut out, &FormatOptions::default())
            .expect("text");
        assert_eq!(&out[..], b"{\"2024-01-01 00:00:00.5\",NULL}");
        let mut out = BytesMut::new();
        vec![
            PgInterval {
                months: 0,
                days: 0,
                micros: 1_000_000,
            },
            PgInterval {
                months: 0,
                days: 2,
                micros: 0,
            },
        ]
        .to_sql_text(&Type::INTERVAL_ARRAY, &mut out, &FormatOptions::default())
        .expect("text");
        assert_eq!(&out[..], b"{00:00:01,\"2 days\"}");
    }
}
