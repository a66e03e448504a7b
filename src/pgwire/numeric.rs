//! `numeric` values on the wire: Arrow's decimals in Postgres' text and binary forms.

use std::error::Error as StdError;

use ::pgwire::types::ToSqlText;
use ::pgwire::types::format::FormatOptions;
use bytes::{BufMut, BytesMut};
use postgres_types::{IsNull, ToSql, Type, to_sql_checked};

/// A decimal as Arrow holds it: `unscaled * 10^-scale`. Postgres keeps the scale as the display
/// scale, so `1.50` of a `DECIMAL(10, 2)` reads back as `1.50`.
#[derive(Debug, Clone, Copy)]
pub(super) struct PgNumeric {
    pub unscaled: i128,
    pub scale: i8,
}

impl PgNumeric {
    /// The integer and fraction digits of the absolute value (the integer part at least "0").
    fn parts(&self) -> (String, String) {
        let mut digits = self.unscaled.unsigned_abs().to_string();
        let fraction = usize::try_from(self.scale).unwrap_or(0);
        if self.scale < 0 {
            digits.push_str(&"0".repeat(usize::from(self.scale.unsigned_abs())));
        }
        if digits.len() <= fraction {
            digits = format!("{}{digits}", "0".repeat(fraction + 1 - digits.len()));
        }
        let point = digits.len() - fraction;
        (digits[..point].to_string(), digits[point..].to_string())
    }

    fn display_scale(&self) -> u16 {
        u16::try_from(self.scale).unwrap_or(0)
    }
}

impl ToSqlText for PgNumeric {
    fn to_sql_text(&self, _: &Type, out: &mut BytesMut, _: &FormatOptions) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let (integer, fraction) = self.parts();
        if self.unscaled < 0 {
            out.put_u8(b'-');
        }
        out.put_slice(integer.as_bytes());
        if !fraction.is_empty() {
            out.put_u8(b'.');
            out.put_slice(fraction.as_bytes());
        }
        Ok(IsNull::No)
    }
}

impl ToSql for PgNumeric {
    /// Postgres' binary numeric: base-10000 digits with the weight of the first (in groups of four
    /// decimal digits from the point), sign and display scale; zero groups at either end are left out.
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let (integer, fraction) = self.parts();
        let integer = format!("{}{integer}", "0".repeat((4 - integer.len() % 4) % 4));
        let fraction = format!("{fraction}{}", "0".repeat((4 - fraction.len() % 4) % 4));
        let group = |chunk: &[u8]| chunk.iter().fold(0i16, |n, d| n * 10 + i16::from(d - b'0'));
        let mut groups: Vec<i16> = integer
            .as_bytes()
            .chunks(4)
            .chain(fraction.as_bytes().chunks(4))
            .map(group)
            .collect();
        let mut weight = i16::try_from(integer.len() / 4)? - 1;
        let leading = groups.iter().take_while(|g| **g == 0).count();
        groups.drain(..leading);
        weight -= i16::try_from(leading)?;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        out.put_i16(i16::try_from(groups.len())?);
        out.put_i16(weight);
        out.put_u16(if self.unscaled < 0 { 0x4000 } else { 0 });
        out.put_u16(self.display_scale());
        for g in groups {
            out.put_i16(g);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(unscaled: i128, scale: i8) -> String {
        let mut out = BytesMut::new();
        PgNumeric { unscaled, scale }
            .to_sql_text(&Type::NUMERIC, &mut out, &FormatOptions::default())
            .expect("text");
        String::from_utf8(out.to_vec()).expect("utf8")
    }

    fn binary(unscaled: i128, scale: i8) -> Vec<i16> {
        let mut out = BytesMut::new();
        PgNumeric { unscaled, scale }.to_sql(&Type::NUMERIC, &mut out).expect("binary");
        out.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn numeric_text_keeps_the_scale() {
        assert_eq!(text(150, 2), "1.50");
        assert_eq!(text(-5, 3), "-0.005");
        assert_eq!(text(0, 2), "0.00");
        assert_eq!(text(12, -2), "1200");
        assert_eq!(text(42, 0), "42");
    }

    #[test]
    fn numeric_binary_is_base_10000_from_the_point() {
        // ndigits, weight, sign, dscale, digits...
        assert_eq!(binary(12345678, 3), vec![3, 1, 0, 3, 1, 2345, 6780]);
        assert_eq!(binary(1, 4), vec![1, -1, 0, 4, 1]);
        assert_eq!(binary(-100000000, 0), vec![1, 2, 0x4000, 0, 1]);
        assert_eq!(binary(0, 2), vec![0, 0, 0, 2]);
    }
}
