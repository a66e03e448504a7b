//! Clients' own catalog queries (SQLAlchemy, pgjdbc, psql, pgcli, Grafana, Metabase), as they send
//! them (driver-bound parameters written in), run on a fresh database with one stored table and
//! one source; each test asserts the rows the client must get.

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::engine::session::{Output, Session};

/// `t (k, window_start, cnt)` keyed by (k, window_start), and source `ev`.
async fn session() -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute(
            "CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, cnt BIGINT, PRIMARY KEY (k, window_start));
             CREATE SOURCE ev (id BIGINT NOT NULL, name VARCHAR, city VARCHAR, vip BOOLEAN) WITH (connector = 'file', path = 'sql/data/customers.csv', format = 'csv')",
        )
        .await
        .expect("setup");
    (dir, session)
}

/// The rows of the last statement's result, each value as text (NULL as `NULL`), columns joined with `|`.
async fn rows(session: &Session, sql: &str) -> Vec<String> {
    let outputs = match session.execute(sql).await {
        Ok(outputs) => outputs,
        Err(e) => panic!("{sql}\n=> {e}"),
    };
    let Some(Output::Rows { batches, .. }) = outputs.into_iter().last() else {
        panic!("{sql}\n=> no rows");
    };
    let options = FormatOptions::default().with_null("NULL");
    let mut lines = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            lines.push(formatters.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    lines
}

async fn error(session: &Session, sql: &str) -> crate::error::Error {
    match session.execute(sql).await {
        Ok(_) => panic!("{sql}\n=> succeeded"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn sqlalchemy_reflects_columns() {
    let (_dir, session) = session().await;
    let sql = "SELECT pg_catalog.pg_attribute.attname AS name, pg_catalog.format_type(pg_catalog.pg_attribute.atttypid, pg_catalog.pg_attribute.atttypmod) AS format_type, CASE WHEN pg_catalog.pg_attribute.atthasdef THEN (SELECT pg_catalog.pg_get_expr(pg_catalog.pg_attrdef.adbin, pg_catalog.pg_attrdef.adrelid) AS pg_get_expr_1 FROM pg_catalog.pg_attrdef WHERE pg_catalog.pg_attribute.atthasdef AND pg_catalog.pg_attrdef.adrelid = pg_catalog.pg_attribute.attrelid AND pg_catalog.pg_attrdef.adnum = pg_catalog.pg_attribute.attnum) ELSE NULL END AS \"default\", pg_catalog.pg_attribute.attnotnull AS not_null, pg_catalog.pg_class.relname AS table_name, pg_catalog.pg_description.description AS comment, pg_catalog.pg_attribute.attgenerated AS generated, CASE WHEN (pg_catalog.pg_attribute.attidentity != ''::VARCHAR) THEN (SELECT json_build_object('always'::VARCHAR, pg_catalog.pg_attribute.attidentity = 'a'::VARCHAR, 'start'::VARCHAR, pg_catalog.pg_sequence.seqstart, 'increment'::VARCHAR, pg_catalog.pg_sequence.seqincrement, 'minvalue'::VARCHAR, pg_catalog.pg_sequence.seqmin, 'maxvalue'::VARCHAR, pg_catalog.pg_sequence.seqmax, 'cache'::VARCHAR, pg_catalog.pg_sequence.seqcache, 'cycle'::VARCHAR, pg_catalog.pg_sequence.seqcycle) AS json_build_object_1 FROM pg_catalog.pg_sequence WHERE pg_catalog.pg_attribute.attidentity != ''::VARCHAR AND pg_catalog.pg_sequence.seqrelid = CAST(CAST(pg_catalog.pg_get_serial_sequence(CAST(CAST(pg_catalog.pg_attribute.attrelid AS REGCLASS) AS TEXT), pg_catalog.pg_attribute.attname) AS REGCLASS) AS OID)) ELSE NULL END AS identity_options, CASE WHEN (pg_catalog.pg_attribute.attcollation != 0::INTEGER AND (SELECT pg_catalog.pg_type.typcollation FROM pg_catalog.pg_type WHERE pg_catalog.pg_type.oid = pg_catalog.pg_attribute.atttypid) != pg_catalog.pg_attribute.attcollation) THEN (SELECT json_build_object('name'::VARCHAR, pg_catalog.pg_collation.collname, 'schema'::VARCHAR, CASE WHEN pg_catalog.pg_collation_is_visible(pg_catalog.pg_collation.oid) THEN NULL ELSE pg_catalog.pg_namespace.nspname END) AS json_build_object_9 FROM pg_catalog.pg_collation JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_collation.collnamespace WHERE pg_catalog.pg_collation.oid = pg_catalog.pg_attribute.attcollation) ELSE NULL END AS collation FROM pg_catalog.pg_class LEFT OUTER JOIN pg_catalog.pg_attribute ON pg_catalog.pg_class.oid = pg_catalog.pg_attribute.attrelid AND pg_catalog.pg_attribute.attnum > 0::SMALLINT AND NOT pg_catalog.pg_attribute.attisdropped LEFT OUTER JOIN pg_catalog.pg_description ON pg_catalog.pg_description.objoid = pg_catalog.pg_attribute.attrelid AND pg_catalog.pg_description.objsubid = pg_catalog.pg_attribute.attnum JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace WHERE pg_catalog.pg_class.relkind = ANY (ARRAY['r'::VARCHAR, 'p'::VARCHAR, 'f'::VARCHAR, 'v'::VARCHAR, 'm'::VARCHAR]) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'::VARCHAR AND pg_catalog.pg_class.relname IN ('t'::VARCHAR) ORDER BY pg_catalog.pg_class.relname, pg_catalog.pg_attribute.attnum";
    assert_eq!(
        rows(&session, sql).await,
        [
            "k|character varying|NULL|true|t|NULL||NULL|NULL",
            "window_start|timestamp without time zone|NULL|true|t|NULL||NULL|NULL",
            "cnt|bigint|NULL|false|t|NULL||NULL|NULL",
        ]
    );
}

#[tokio::test]
async fn reg_casts_read_and_print_names() {
    let (_dir, session) = session().await;
    assert_eq!(
        rows(
            &session,
            "SELECT CAST(CAST(attrelid AS REGCLASS) AS TEXT), atttypid::regtype::text, 'int8'::regtype, 'bigint[]'::regtype::text, \
             'public'::regnamespace, 'pg_class'::regclass::text FROM pg_catalog.pg_attribute WHERE attname = 'cnt'"
        )
        .await,
        ["t|bigint|20|bigint[]|2200|pg_class"]
    );
    assert_eq!(
        rows(&session, "SELECT 'now'::pg_catalog.regproc::pg_catalog.regproc::text, json_build_object('a', 1, 'b', 'x', 'c', NULL)").await,
        ["now|{\"a\" : 1, \"b\" : \"x\", \"c\" : null}"]
    );
    assert_eq!(error(&session, "SELECT 'nosuch'::regtype").await.sqlstate(), "42704");
}
