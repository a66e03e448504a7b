//! Runs every `sql/**/*.slt` file against an embedded Weir session, each on a fresh data directory.

use std::path::{Path, PathBuf};

use sqllogictest::{DBOutput, DefaultColumnType};
use weir::{Output, Session};

struct Weir {
    session: Session,
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Weir {
    type Error = weir::Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, weir::Error> {
        let outputs = self.session.execute(sql).await?;
        match outputs.last() {
            Some(Output::Rows { schema, batches }) => {
                let rows = weir::format::rows_text(batches)?
                    .into_iter()
                    .map(|row| {
                        row.into_iter()
                            .map(|cell| match cell {
                                None => "NULL".to_string(),
                                Some(s) if s.is_empty() => "(empty)".to_string(),
                                Some(s) => s,
                            })
                            .collect()
                    })
                    .collect();
                Ok(DBOutput::Rows {
                    types: vec![DefaultColumnType::Any; schema.fields().len()],
                    rows,
                })
            }
            _ => Ok(DBOutput::StatementComplete(0)),
        }
    }

    fn engine_name(&self) -> &str {
        "weir"
    }

    async fn shutdown(&mut self) {}

    /// `sleep 1s` in a file lets a running job get somewhere (say, before a STOP); never for
    /// timing a result. The jobs run on this runtime, so it must not block its thread.
    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            slt_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

fn main() {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut files = Vec::new();
    slt_files(Path::new("sql"), &mut files);
    files.sort();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (mut passed, mut failed) = (0, 0);
    for file in files {
        if filter.as_deref().is_some_and(|f| !file.to_string_lossy().contains(f)) {
            continue;
        }
        let result = runtime.block_on(async {
            let dir = tempfile::tempdir().expect("temp dir");
            let session = Session::open(dir.path()).await.map_err(|e| e.to_string())?;
            let db = session.database().clone();
            let mut runner = sqllogictest::Runner::new(move || {
                let session = Session::new(db.clone());
                async { Ok::<_, weir::Error>(Weir { session }) }
            });
            runner.with_column_validator(|_, _| true);
            let outcome = runner.run_file_async(&file).await.map_err(|e| e.display(true).to_string());
            drop(session);
            drop(dir);
            outcome
        });
        match result {
            Ok(()) => {
                passed += 1;
                println!("ok     {}", file.display());
            }
            Err(e) => {
                failed += 1;
                println!("FAILED {}\n{e}\n", file.display());
            }
        }
    }
    println!("slt: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
