//! `COPY ... TO STDOUT`: a result's rows in COPY's text, CSV or binary format, one CopyData
//! message per row as Postgres sends them.

use std::sync::Arc;

use ::pgwire::api::portal::Format;
use ::pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, Response};
use ::pgwire::error::PgWireResult;
use ::pgwire::messages::copy::CopyData;
use bytes::{BufMut, BytesMut};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::stream;

use super::field_infos;
use super::pg_column::pg_columns;
use crate::planner::postgres_commands::{CopyFormat, CopyOptions};

/// The CopyOutResponse and data of `batches` in the format `options` give.
pub(super) fn encode_copy(schema: &SchemaRef, batches: &[RecordBatch], options: &CopyOptions) -> PgWireResult<Response> {
    let binary = options.format == CopyFormat::Binary;
    let fields = Arc::new(field_infos(
        schema,
        if binary { &Format::UnifiedBinary } else { &Format::UnifiedText },
    ));
    let mut encoder = match options.format {
        CopyFormat::Binary => CopyEncoder::new_binary(fields.clone()),
        CopyFormat::Text => CopyEncoder::new_text(
            fields.clone(),
            CopyTextOptions {
                delimiter: options.delimiter.to_string().into(),
                null_string: options.null.clone().into(),
            },
        ),
        CopyFormat::Csv => CopyEncoder::new_csv(
            fields.clone(),
            CopyCsvOptions {
                delimiter: options.delimiter.to_string().into(),
                quote: options.quote.to_string().into(),
                escape: options.quote.to_string().into(),
                null_string: options.null.clone().into(),
                force_quote: schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| options.force_quote.iter().any(|c| c == "*" || c == f.name()))
                    .map(|(i, _)| i)
                    .collect(),
            },
        ),
    };
    // The header line goes in the first row's message: the command tag counts messages as rows.
    let mut header = options.header.then(|| header_line(schema, options));
    let mut messages: Vec<PgWireResult<CopyData>> = Vec::new();
    for batch in batches {
        let columns = pg_columns(batch)?;
        for row in 0..batch.num_rows() {
            for column in &columns {
                column.encode(row, &mut encoder)?;
            }
            let data = encoder.take_copy();
            messages.push(Ok(match header.take() {
                Some(mut line) => {
                    line.extend_from_slice(&data.data);
                    CopyData::new(line.freeze())
                }
                None => data,
            }));
        }
    }
    if let Some(line) = header {
        messages.push(Ok(CopyData::new(line.freeze())));
    }
    if binary && messages.is_empty() {
        // The binary format's header comes with the first row; without rows it comes alone.
        let mut header = BytesMut::from(&b"PGCOPY\n\xFF\r\n\x00"[..]);
        header.put_i32(0);
        header.put_i32(0);
        messages.push(Ok(CopyData::new(header.freeze())));
    }
    Ok(Response::CopyOut(CopyResponse::new(
        i8::from(binary),
        schema.fields().len(),
        stream::iter(messages),
    )))
}

/// The column names as COPY's first line (CSV quotes a name that needs it).
fn header_line(schema: &SchemaRef, options: &CopyOptions) -> BytesMut {
    let quote = options.quote.to_string();
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let name = f.name();
            let needs_quotes = options.format == CopyFormat::Csv
                && (name.contains(options.delimiter) || name.contains(options.quote) || name.contains(['\n', '\r']));
            if needs_quotes {
                format!("{quote}{}{quote}", name.replace(&quote, &format!("{quote}{quote}")))
            } else {
                name.clone()
            }
        })
        .collect();
    let mut line = BytesMut::from(names.join(&options.delimiter.to_string()).as_bytes());
    line.put_u8(b'\n');
    line
}
