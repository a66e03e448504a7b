//! Rendering query results for people and scripts: aligned tables (REPL, `weir run`), CSV and JSON
//! lines (`weir run --format`), and the cell text the sqllogictest runner compares.

use std::io::Write;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::engine::session::Output;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// The text of one cell; `None` for NULL. Floats print as Rust does (`3`, `2.5`).
pub fn cell_text(column: &dyn Array, row: usize) -> Result<Option<String>> {
    if column.is_null(row) || column.data_type() == &DataType::Null {
        return Ok(None);
    }
    Ok(Some(match column.data_type() {
        DataType::Float64 => column.as_primitive::<Float64Type>().value(row).to_string(),
        DataType::Float32 => column.as_primitive::<Float32Type>().value(row).to_string(),
        _ => ArrayFormatter::try_new(column, &FormatOptions::default())?.value(row).to_string(),
    }))
}

/// Every row of the batches as cell texts.
pub fn rows_text(batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    for batch in batches {
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| cell_text(c.as_ref(), r))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
    }
    Ok(rows)
}

/// Renders one statement's output. Statements without rows print their tag in table format only.
pub fn render(output: &Output, format: OutputFormat) -> Result<String> {
    let mut text = Vec::new();
    write_output(output, format, &mut text)?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// Writes one statement's output as `render` does, CSV and JSON a batch at a time: `weir run`
/// prints millions of rows without holding their text.
pub fn write_output(output: &Output, format: OutputFormat, out: &mut impl Write) -> Result<()> {
    match (output, format) {
        (Output::Done { tag }, OutputFormat::Table) => writeln!(out, "{tag}")?,
        (Output::Transaction { tag, .. }, OutputFormat::Table) => writeln!(out, "{tag}")?,
        (Output::Done { .. } | Output::Transaction { .. }, _) => {}
        // COPY TO STDOUT is for Postgres clients; the REPL and scripts show its rows as a query's.
        (Output::Rows { schema, batches } | Output::Copy { schema, batches, .. }, OutputFormat::Table) => {
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let table = if rows == 0 {
                pretty_format_batches(&[RecordBatch::new_empty(schema.clone())])?
            } else {
                pretty_format_batches(batches)?
            };
            write!(out, "{table}\n({rows} row{})\n", if rows == 1 { "" } else { "s" })?;
        }
        (Output::Rows { schema, batches } | Output::Copy { schema, batches, .. }, OutputFormat::Csv) => write_csv(schema, batches, out)?,
        (Output::Rows { batches, .. } | Output::Copy { batches, .. }, OutputFormat::Json) => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
    }
    Ok(())
}

fn write_csv(schema: &SchemaRef, batches: &[RecordBatch], out: &mut impl Write) -> Result<()> {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let header = schema.fields().iter().map(|f| quote(f.name())).collect::<Vec<_>>().join(",");
    writeln!(out, "{header}")?;
    for batch in batches {
        let mut text = String::new();
        for row in rows_text(std::slice::from_ref(batch))? {
            text.push_str(
                &row.iter()
                    .map(|c| c.as_deref().map(quote).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            text.push('\n');
        }
        out.write_all(text.as_bytes())?;
    }
    Ok(())
}
