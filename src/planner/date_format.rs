//! Flink's `DATE_FORMAT(timestamp, format)`: a timestamp (or a string that casts to one) as a
//! string, in a Java `SimpleDateFormat` pattern such as `'yyyy-MM-dd HH:mm'`. Nexmark q15-q17 group
//! by `DATE_FORMAT(dateTime, 'yyyy-MM-dd')`. DataFusion's own `date_format` is an alias of
//! `to_char`, which reads strftime patterns and would turn `'yyyy-MM-dd'` into itself, so this
//! function replaces it.

use std::sync::Arc;

use chrono::DateTime;
use chrono::format::{Item, StrftimeItems};
use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::flink_functions::{columnar_result, is_string_or_null};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateFormat {
    signature: Signature,
}

impl DateFormat {
    pub fn new() -> Self {
        DateFormat {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [value, format] if formattable(value) && is_string_or_null(format) => Ok(DataType::Utf8),
            _ => plan_err!("DATE_FORMAT takes a timestamp (or a string) and a format string, not {args:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let [value, format] = args.args.as_slice() else {
            return exec_err!("DATE_FORMAT takes two arguments");
        };
        let format = match format {
            ColumnarValue::Scalar(format) => match format.cast_to(&DataType::Utf8)? {
                ScalarValue::Utf8(Some(format)) => format,
                // A NULL format gives NULL, as every Flink function given a NULL argument.
                _ => return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
            },
            ColumnarValue::Array(_) => return exec_err!("DATE_FORMAT's format must be a constant string"),
        };
        let strftime = match strftime_of(&format) {
            Ok(strftime) => strftime,
            Err(reason) => return exec_err!("DATE_FORMAT format '{format}': {reason}"),
        };
        let items: Vec<Item<'_>> = StrftimeItems::new(&strftime).collect();
        let values = value.to_array(1)?;
        let millis = cast(&values, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let formatted: StringArray = millis
            .as_primitive::<TimestampMillisecondType>()
            .iter()
            .map(|t| {
                t.and_then(DateTime::from_timestamp_millis)
                    .map(|t| t.naive_utc().format_with_items(items.iter()).to_string())
            })
            .collect();
        columnar_result(Arc::new(formatted), &args.args)
    }
}

fn formattable(value: &DataType) -> bool {
    matches!(value, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64) || is_string_or_null(value)
}

/// The strftime (chrono) spelling of a `SimpleDateFormat` pattern: letters repeat to choose a
/// width or a name, text in single quotes is literal (`''` is a quote), other characters stand
/// for themselves. A letter without a UTC equivalent here (zones, week years, ...) is an error,
/// never printed as itself.
fn strftime_of(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|x| **x == c).count();
        if c == '\'' {
            if run >= 2 && run % 2 == 0 {
                out.extend(std::iter::repeat_n('\'', run / 2));
                i += run;
                continue;
            }
            // A quoted literal: up to the closing quote, where `''` inside is a quote.
            i += 1;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (Some('\''), Some('\'')) => {
                        out.push('\'');
                        i += 2;
                    }
                    (Some('\''), _) => {
                        i += 1;
                        break;
                    }
                    (Some(literal), _) => {
                        push_literal(&mut out, *literal);
                        i += 1;
                    }
                    (None, _) => return Err("a quote is not closed".into()),
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let field = match (c, run) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('D', 1) => "%-j",
            ('D', 3) => "%j",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('a', _) => "%p",
            _ => return Err(format!("the pattern letter '{}' is not supported", c.to_string().repeat(run))),
        };
        out.push_str(field);
        i += run;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(pattern: &str, millis: i64) -> String {
        let strftime = strftime_of(pattern).expect("pattern");
        let time = DateTime::from_timestamp_millis(millis).expect("time").naive_utc();
        time.format(&strftime).to_string()
    }

    #[test]
    fn java_patterns_format_as_flink_does() {
        // 2015-07-15 08:05:09.045 UTC
        let t = 1_436_947_509_045;
        assert_eq!(format("yyyy-MM-dd", t), "2015-07-15");
        assert_eq!(format("HH:mm", t), "08:05");
        assert_eq!(format("yyyy-MM-dd HH:mm:ss.SSS", t), "2015-07-15 08:05:09.045");
        assert_eq!(format("yy/M/d H:m:s", t), "15/7/15 8:5:9");
        assert_eq!(format("EEE, d MMM yyyy hh:mm a", t), "Wed, 15 Jul 2015 08:05 AM");
        assert_eq!(format("yyyy'T'HH 'o''clock' 100%", t), "2015T08 o'clock 100%");
        assert_eq!(format("''yy''", t), "'15'");
        assert_eq!(format("D DDD", 1_420_070_400_000 + 4 * 86_400_000), "5 005");
    }

    #[test]
    fn unsupported_letters_and_open_quotes_are_errors() {
        assert_eq!(strftime_of("yyyy-ww").unwrap_err(), "the pattern letter 'ww' is not supported");
        assert_eq!(strftime_of("HH:mm z").unwrap_err(), "the pattern letter 'z' is not supported");
        assert_eq!(strftime_of("yyyy 'T").unwrap_err(), "a quote is not closed");
    }
}
