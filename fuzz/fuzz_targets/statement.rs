//! Statement parsing and planning (issue 12): any text a client sends is parsed, and planned as
//! the extended protocol's Describe plans it (`Session::describe_sql`: a query is planned, not run;
//! read-only commands run), and once more behind `EXPLAIN` (which plans `CREATE JOB`'s job graph).
//! A crash, a panic or an internal error (SQLSTATE XX000) fails the run: every error a user can
//! cause has its own SQLSTATE.
//!
//! The catalog holds the sources and tables the sqllogictest files create, so the seed corpus
//! (their statements, see scripts/fuzz_seeds.py) plans as far as it does in the tests.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use weir::engine::database::DatabaseOptions;
use weir::planner::statement::parse_statements;
use weir::{Database, Session};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    db: Arc<Database>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `CREATE SOURCE` and `CREATE TABLE` statements of the slt files, which
/// scripts/fuzz_seeds.py writes beside the corpus, one statement per block.
fn catalog_statements() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog.sql");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; scripts/fuzz.sh targets writes it", path.display()));
    text.split("\n;\n").map(str::to_owned).collect()
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    // The slt files name their data files relative to the repository.
    std::env::set_current_dir(repo()).expect("cd to the repository");
    // As `weir serve` runs statements: worker threads with 16 MiB stacks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("weir-fuzz-statement-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = runtime.block_on(async {
        let options = DatabaseOptions::local(Vec::new()).expect("options");
        let db = Database::open_with(&dir, options).await.expect("open the database");
        let session = Session::new(db.clone());
        for sql in catalog_statements() {
            if let Err(e) = session.execute(&sql).await {
                eprintln!("setting up the catalog: {e}\n{sql}");
            }
        }
        db
    });
    Fixture { runtime, db }
});

/// An internal error from user input is a bug, like a panic.
fn check(sql: &str, what: &str, result: weir::Result<()>) {
    if let Err(e) = result
        && !e.is_user()
    {
        panic!("{what} of {sql:?} gave an internal error (XX000): {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = &*FIXTURE;
    let session = Session::new(fixture.db.clone());
    let sql = sql.to_owned();
    // On a worker thread, as the server runs a statement (the main thread's stack is smaller).
    let task = fixture.runtime.spawn(async move {
        check(&sql, "parsing", parse_statements(&sql).map(drop));
        check(&sql, "describing", session.describe_sql(&sql).await.map(drop));
        let explain = format!("EXPLAIN {sql}");
        check(&explain, "describing", session.describe_sql(&explain).await.map(drop));
    });
    if let Err(e) = fixture.runtime.block_on(task)
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
});
