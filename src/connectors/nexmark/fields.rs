//! The fields of the three Nexmark tables: names, generated types, and which declared types a
//! generated column may be cast to.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Generated as Int64.
    Int,
    /// Generated as Utf8.
    Str,
    /// Generated as Timestamp(Millisecond, None).
    Ts,
}

#[derive(Debug)]
pub(super) struct FieldDef {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// Rough average byte length, to size string buffers.
    pub(super) avg_len: usize,
}

const fn fd(name: &'static str, kind: Kind, avg_len: usize) -> FieldDef {
    FieldDef { name, kind, avg_len }
}

pub(super) const P_ID: usize = 0;
pub(super) const P_NAME: usize = 1;
pub(super) const P_EMAIL: usize = 2;
pub(super) const P_CARD: usize = 3;
pub(super) const P_CITY: usize = 4;
pub(super) const P_STATE: usize = 5;
pub(super) const P_DATE_TIME: usize = 6;
pub(super) const P_EXTRA: usize = 7;
pub(super) const PERSON_FIELDS: &[FieldDef] = &[
    fd("id", Kind::Int, 8),
    fd("name", Kind::Str, 12),
    fd("email_address", Kind::Str, 14),
    fd("credit_card", Kind::Str, 19),
    fd("city", Kind::Str, 8),
    fd("state", Kind::Str, 2),
    fd("date_time", Kind::Ts, 8),
    fd("extra", Kind::Str, 140),
];

pub(super) const A_ID: usize = 0;
pub(super) const A_ITEM_NAME: usize = 1;
pub(super) const A_DESCRIPTION: usize = 2;
pub(super) const A_INITIAL_BID: usize = 3;
pub(super) const A_RESERVE: usize = 4;
pub(super) const A_DATE_TIME: usize = 5;
pub(super) const A_EXPIRES: usize = 6;
pub(super) const A_SELLER: usize = 7;
pub(super) const A_CATEGORY: usize = 8;
pub(super) const A_EXTRA: usize = 9;
pub(super) const AUCTION_FIELDS: &[FieldDef] = &[
    fd("id", Kind::Int, 8),
    fd("item_name", Kind::Str, 11),
    fd("description", Kind::Str, 51),
    fd("initial_bid", Kind::Int, 8),
    fd("reserve", Kind::Int, 8),
    fd("date_time", Kind::Ts, 8),
    fd("expires", Kind::Ts, 8),
    fd("seller", Kind::Int, 8),
    fd("category", Kind::Int, 8),
    fd("extra", Kind::Str, 400),
];

pub(super) const B_AUCTION: usize = 0;
pub(super) const B_BIDDER: usize = 1;
pub(super) const B_PRICE: usize = 2;
pub(super) const B_CHANNEL: usize = 3;
pub(super) const B_URL: usize = 4;
pub(super) const B_DATE_TIME: usize = 5;
pub(super) const B_EXTRA: usize = 6;
pub(super) const BID_FIELDS: &[FieldDef] = &[
    fd("auction", Kind::Int, 8),
    fd("bidder", Kind::Int, 8),
    fd("price", Kind::Int, 8),
    fd("channel", Kind::Str, 10),
    fd("url", Kind::Str, 72),
    fd("date_time", Kind::Ts, 8),
    fd("extra", Kind::Str, 68),
];

pub(super) fn valid_names(table: NexmarkTable) -> String {
    table.fields().iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

/// Whether a generated column of `kind` may be declared as `to`: arrow must be able to cast it,
/// and the cast must be meaningful (no string-to-number casts that would yield all NULLs).
pub(super) fn castable(kind: Kind, to: &DataType) -> bool {
    let from = generated_type(kind);
    if from == *to {
        return true;
    }
    let is_string = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let family_ok = match kind {
        Kind::Int => to.is_numeric() || is_string(to),
        Kind::Str => match to {
            DataType::Dictionary(_, value) => is_string(value),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => true,
            other => is_string(other),
        },
        Kind::Ts => {
            matches!(
                to,
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Int64
            ) || is_string(to)
        }
    };
    family_ok && can_cast_types(&from, to)
}

pub(super) fn generated_type(kind: Kind) -> DataType {
    match kind {
        Kind::Int => DataType::Int64,
        Kind::Str => DataType::Utf8,
        Kind::Ts => DataType::Timestamp(TimeUnit::Millisecond, None),
    }
}
