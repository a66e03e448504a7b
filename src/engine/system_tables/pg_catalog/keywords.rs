//! `pg_get_keywords()`: the words Weir's SQL parser treats as keywords (sqlparser's, with the
//! Postgres dialect), one row each. A word the parser refuses as a column alias is reserved ('R');
//! any other is unreserved ('U') and may stand as a bare column label.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::execution::context::SessionContext;
use sqlparser::keywords::{ALL_KEYWORDS, ALL_KEYWORDS_INDEX, RESERVED_FOR_COLUMN_ALIAS};

use super::{table, text};
use crate::error::Error;

#[derive(Debug)]
struct Keywords;

impl TableFunctionImpl for Keywords {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return Err(Error::invalid("pg_get_keywords takes no arguments").into());
        }
        let words: Vec<(String, bool)> = ALL_KEYWORDS
            .iter()
            .zip(ALL_KEYWORDS_INDEX)
            .map(|(word, keyword)| (word.to_ascii_lowercase(), RESERVED_FOR_COLUMN_ALIAS.contains(keyword)))
            .collect();
        Ok(table(vec![
            ("word", text(words.iter().map(|(w, _)| w.as_str()))),
            ("catcode", text(words.iter().map(|(_, r)| if *r { "R" } else { "U" }))),
            ("barelabel", super::boolean(words.iter().map(|(_, r)| !r))),
            (
                "catdesc",
                text(words.iter().map(|(_, r)| if *r { "reserved" } else { "unreserved" })),
            ),
            (
                "baredesc",
                text(words.iter().map(|(_, r)| if *r { "requires AS" } else { "can be bare label" })),
            ),
        ])?)
    }
}

pub(super) fn register(ctx: &SessionContext) {
    ctx.register_udtf("pg_get_keywords", Arc::new(Keywords));
}
