//! Flink's `DATE_FORMAT(timestamp, format)`: a timestamp (or a string that casts to one) as a
//! string, in a Java `SimpleDateFormat` pattern such as `'yyyy-MM-dd HH:mm'`. Nexmark q15-q17 group
//! by `DATE_FORMAT(dateTime, 'yyyy-MM-dd')`. DataFusion's own `date_format` is an alias of
//! `to_char`, which reads strftime patterns and would turn `'yyyy-MM-dd'` into itself, so this
//! function replaces it.

use std::sync::Arc;

use chrono::DateTime;
use chrono::format::{Item, StrftimeItems};
use datafusion::arrow::array::{AsArray, StringBuilder};
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
        let pattern = match Pattern::parse(&format) {
            Ok(pattern) => pattern,
            Err(reason) => return exec_err!("DATE_FORMAT format '{format}': {reason}"),
        };
        let items: Vec<Item<'_>> = StrftimeItems::new(&pattern.strftime).collect();
        let values = value.to_array(1)?;
        let millis = cast(&values, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let millis = millis.as_primitive::<TimestampMillisecondType>();
        // Rows come in about time order, and most patterns stop at the day or the minute: format
        // once per span and copy the text while the rows stay in it.
        let mut last: Option<(i64, Option<String>)> = None;
        let mut formatted = StringBuilder::with_capacity(millis.len(), millis.len() * pattern.strftime.len());
        for t in millis.iter() {
            let Some(t) = t else {
                formatted.append_null();
                continue;
            };
            let span = t.div_euclid(pattern.span_millis);
            let text = match &last {
                Some((last_span, text)) if *last_span == span => text,
                _ => {
                    let text = DateTime::from_timestamp_millis(t).map(|t| t.naive_utc().format_with_items(items.iter()).to_string());
                    &last.insert((span, text)).1
                }
            };
            formatted.append_option(text.as_deref());
        }
        let formatted = formatted.finish();
        columnar_result(Arc::new(formatted), &args.args)
    }
}

fn formattable(value: &DataType) -> bool {
    matches!(value, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64) || is_string_or_null(value)
}

/// A `SimpleDateFormat` pattern in chrono's strftime spelling, with the span of time over which
/// its text stays the same (its finest field: a day for 'yyyy-MM-dd', a minute for 'HH:mm').
struct Pattern {
    strftime: String,
    span_millis: i64,
}

impl Pattern {
    fn parse(pattern: &str) -> Result<Self, String> {
        let strftime = strftime_of(pattern)?;
        let mut span_millis = 86_400_000;
        for letter in pattern_letters(pattern) {
            let field_span = match letter {
                'S' => 1,
                's' => 1_000,
                'm' => 60_000,
                'H' | 'h' | 'a' => 3_600_000,
                _ => 86_400_000,
            };
            span_millis = span_millis.min(field_span);
        }
        Ok(Pattern { strftime, span_millis })
    }
}

/// The pattern letters of a `SimpleDateFormat` pattern, outside its quoted text.
fn pattern_letters(pattern: &str) -> impl Iterator<Item = char> + '_ {
    let mut quoted = false;
    pattern.chars().filter(move |c| {
        if *c == '\'' {
            quoted = !quoted;
        }
        !quoted && c.is_ascii_alphabetic()
    })
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
    fn text_is_formatted_once_per_span_of_its_finest_field() {
        let span = |pattern: &str| Pattern::parse(pattern).expect("pattern").span_millis;
        assert_eq!(span("yyyy-MM-dd"), 86_400_000);
        assert_eq!(span("HH:mm"), 60_000);
        assert_eq!(span("hh a"), 3_600_000);
        assert_eq!(span("yyyy-MM-dd HH:mm:ss.SSS"), 1);
        // Letters in quotes are text, not fields.
        assert_eq!(span("yyyy 'at' HH"), 3_600_000);
        assert_eq!(span("yyyy 'o''clock'"), 86_400_000);

        // Unsorted rows, a NULL and times before 1970 around the spans' edges.
        let udf = datafusion::logical_expr::ScalarUDF::from(DateFormat::new());
        let times = [Some(-1), Some(0), None, Some(59_999), Some(60_000), Some(-60_001), Some(59_000)];
        let array = datafusion::arrow::array::TimestampMillisecondArray::from(times.to_vec());
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(Arc::new(array)),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("yyyy-MM-dd HH:mm".into()))),
            ],
            arg_fields: vec![
                Arc::new(datafusion::arrow::datatypes::Field::new(
                    "t",
                    DataType::Timestamp(TimeUnit::Millisecond, None),
                    true,
                )),
                Arc::new(datafusion::arrow::datatypes::Field::new("f", DataType::Utf8, false)),
            ],
            number_rows: times.len(),
            return_field: Arc::new(datafusion::arrow::datatypes::Field::new("r", DataType::Utf8, true)),
            config_options: Arc::new(Default::default()),
        };
        let ColumnarValue::Array(out) = udf.invoke_with_args(args).expect("formatted") else {
            panic!("an array of texts")
        };
        let out: Vec<Option<&str>> = out.as_string::<i32>().iter().collect();
        assert_eq!(
            out,
            [
                Some("1969-12-31 23:59"),
                Some("1970-01-01 00:00"),
                None,
                Some("1970-01-01 00:00"),
                Some("1970-01-01 00:01"),
                Some("1969-12-31 23:58"),
                Some("1970-01-01 00:00"),
            ]
        );
    }

    #[test]
    fn unsupported_letters_and_open_quotes_are_errors() {
        assert_eq!(strftime_of("yyyy-ww").unwrap_err(), "the pattern letter 'ww' is not supported");
        assert_eq!(strftime_of("HH:mm z").unwrap_err(), "the pattern letter 'z' is not supported");
        assert_eq!(strftime_of("yyyy 'T").unwrap_err(), "a quote is not closed");
    }
}
