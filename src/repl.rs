//! The interactive shell: rustyline with a history file, statements that may span lines and end
//! with `;`, aligned tables with row count and elapsed time. Errors are printed and the shell goes on.

use std::path::PathBuf;
use std::time::Instant;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::engine::session::Session;
use crate::error::{Error, Result};
use crate::format::{OutputFormat, render};

pub async fn run(session: Session, history: PathBuf) -> Result<()> {
    let mut editor = DefaultEditor::new().map_err(|e| Error::internal(format!("cannot start the line editor: {e}")))?;
    let _ = editor.load_history(&history);
    println!(
        "Weir {} — statements end with ';'. Try SHOW SOURCES; \\q quits.",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "weir> " } else { "  ... " };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
                    break;
                }
                if trimmed.is_empty() && buffer.is_empty() {
                    continue;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if !trimmed.ends_with(';') {
                    continue;
                }
                let sql = std::mem::take(&mut buffer);
                let _ = editor.add_history_entry(sql.trim());
                let started = Instant::now();
                let result = session
                    .execute_script(&sql, |output| match render(&output, OutputFormat::Table) {
                        Ok(text) => print!("{text}"),
                        Err(e) => eprintln!("ERROR: {e}"),
                    })
                    .await;
                match result {
                    Ok(()) => println!("Time: {:.3} s", started.elapsed().as_secs_f64()),
                    Err(e) => eprintln!("ERROR: {e}"),
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::internal(format!("line editor: {e}"))),
        }
    }
    let _ = editor.save_history(&history);
    Ok(())
}
