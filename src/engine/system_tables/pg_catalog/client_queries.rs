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
        rows(
            &session,
            "SELECT 'now'::pg_catalog.regproc::pg_catalog.regproc::text, json_build_object('a', 1, 'b', 'x', 'c', NULL)"
        )
        .await,
        ["now|{\"a\" : 1, \"b\" : \"x\", \"c\" : null}"]
    );
    assert_eq!(error(&session, "SELECT 'nosuch'::regtype").await.sqlstate(), "42704");
}

async fn table_oid(session: &Session) -> String {
    rows(session, "SELECT oid FROM pg_catalog.pg_class WHERE relname = 't'")
        .await
        .remove(0)
}

#[tokio::test]
async fn sqlalchemy_reflects_keys_indexes_schemas_enums_and_options() {
    let (_dir, session) = session().await;
    let oid = table_oid(&session).await;
    let pk = "SELECT attr.conrelid, array_agg(CAST(attr.attname AS TEXT) ORDER BY attr.ord) AS cols, attr.conname, min(attr.description) AS description, min(attr.indnkeyatts) AS indnkeyatts, bool_and(attr.indnullsnotdistinct) AS indnullsnotdistinct FROM (SELECT con.conrelid AS conrelid, con.conname AS conname, con.description AS description, con.ord AS ord, con.indnkeyatts AS indnkeyatts, con.indnullsnotdistinct AS indnullsnotdistinct, pg_catalog.pg_attribute.attname AS attname FROM pg_catalog.pg_attribute JOIN (SELECT pg_catalog.pg_constraint.conrelid AS conrelid, pg_catalog.pg_constraint.conname AS conname, unnest(pg_catalog.pg_index.indkey) AS attnum, generate_subscripts(pg_catalog.pg_index.indkey, 1::INTEGER) AS ord, pg_catalog.pg_index.indnkeyatts AS indnkeyatts, pg_catalog.pg_index.indnullsnotdistinct AS indnullsnotdistinct, pg_catalog.pg_description.description AS description FROM pg_catalog.pg_constraint JOIN pg_catalog.pg_index ON pg_catalog.pg_constraint.conindid = pg_catalog.pg_index.indexrelid LEFT OUTER JOIN pg_catalog.pg_description ON pg_catalog.pg_description.objoid = pg_catalog.pg_constraint.oid AND pg_catalog.pg_description.classoid = CAST('pg_catalog.pg_constraint' AS REGCLASS) WHERE pg_catalog.pg_constraint.contype = 'CONTYPE'::VARCHAR AND pg_catalog.pg_constraint.conrelid IN (OID)) AS con ON pg_catalog.pg_attribute.attnum = con.attnum AND pg_catalog.pg_attribute.attrelid = con.conrelid WHERE con.conrelid IN (OID)) AS attr GROUP BY attr.conrelid, attr.conname ORDER BY attr.conrelid, attr.conname";
    assert_eq!(
        rows(&session, &pk.replace("OID", &oid).replace("CONTYPE", "p")).await,
        [format!("{oid}|[k, window_start]|t_pkey|NULL|2|false")]
    );
    assert!(rows(&session, &pk.replace("OID", &oid).replace("CONTYPE", "u")).await.is_empty());

    // Weir's only indexes are primary keys, which get_indexes leaves out.
    let indexes = "SELECT pg_catalog.pg_index.indrelid, pg_catalog.pg_class.relname, pg_catalog.pg_index.indisunique, pg_catalog.pg_index.indisvalid, pg_catalog.pg_constraint.conrelid IS NOT NULL AS has_constraint, pg_catalog.pg_index.indoption, pg_catalog.pg_class.reloptions, pg_catalog.pg_class.relam, CASE WHEN (pg_catalog.pg_index.indpred IS NOT NULL) THEN pg_catalog.pg_get_expr(pg_catalog.pg_index.indpred, pg_catalog.pg_index.indrelid) END AS filter_definition, pg_catalog.pg_index.indnkeyatts, pg_catalog.pg_index.indnullsnotdistinct, idx_cols.elements, idx_cols.elements_is_expr, idx_cols.elements_opclass FROM pg_catalog.pg_index JOIN pg_catalog.pg_class ON pg_catalog.pg_index.indexrelid = pg_catalog.pg_class.oid LEFT OUTER JOIN (SELECT idx_attr.indexrelid AS indexrelid, min(idx_attr.indrelid) AS min_1, array_agg(idx_attr.element ORDER BY idx_attr.ord) AS elements, array_agg(idx_attr.is_expr ORDER BY idx_attr.ord) AS elements_is_expr, array_agg(idx_attr.att_opclass ORDER BY idx_attr.ord) AS elements_opclass FROM (SELECT idx.indexrelid AS indexrelid, idx.indrelid AS indrelid, idx.ord AS ord, CASE WHEN (idx.attnum = 0::INTEGER) THEN pg_catalog.pg_get_indexdef(idx.indexrelid, idx.ord + 1::INTEGER, true) ELSE CAST(pg_catalog.pg_attribute.attname AS TEXT) END AS element, idx.attnum = 0::INTEGER AS is_expr, CAST(idx.att_opclass AS BIGINT) AS att_opclass FROM (SELECT pg_catalog.pg_index.indexrelid AS indexrelid, pg_catalog.pg_index.indrelid AS indrelid, unnest(pg_catalog.pg_index.indkey) AS attnum, unnest(pg_catalog.pg_index.indclass) AS att_opclass, generate_subscripts(pg_catalog.pg_index.indkey, 1::INTEGER) AS ord FROM pg_catalog.pg_index WHERE NOT pg_catalog.pg_index.indisprimary AND pg_catalog.pg_index.indrelid IN (OID)) AS idx LEFT OUTER JOIN pg_catalog.pg_attribute ON pg_catalog.pg_attribute.attnum = idx.attnum AND pg_catalog.pg_attribute.attrelid = idx.indrelid WHERE idx.indrelid IN (OID)) AS idx_attr GROUP BY idx_attr.indexrelid) AS idx_cols ON pg_catalog.pg_index.indexrelid = idx_cols.indexrelid LEFT OUTER JOIN pg_catalog.pg_constraint ON pg_catalog.pg_index.indrelid = pg_catalog.pg_constraint.conrelid AND pg_catalog.pg_index.indexrelid = pg_catalog.pg_constraint.conindid AND pg_catalog.pg_constraint.contype = ANY (ARRAY['p'::VARCHAR, 'u'::VARCHAR, 'x'::VARCHAR]) WHERE pg_catalog.pg_index.indrelid IN (OID) AND NOT pg_catalog.pg_index.indisprimary ORDER BY pg_catalog.pg_index.indrelid, pg_catalog.pg_class.relname";
    assert!(rows(&session, &indexes.replace("OID", &oid)).await.is_empty());
    // The same subscripts beside the key columns, in step.
    assert_eq!(
        rows(
            &session,
            "SELECT unnest(indkey) AS attnum, unnest(indclass) AS opclass, generate_subscripts(indkey, 1) AS ord FROM pg_catalog.pg_index"
        )
        .await,
        ["1|0|1", "2|0|2"]
    );

    assert_eq!(
        rows(&session, "SELECT pg_catalog.pg_namespace.nspname FROM pg_catalog.pg_namespace WHERE (pg_catalog.pg_namespace.nspname NOT LIKE 'pg/_'::VARCHAR || '%' ESCAPE '/') ORDER BY pg_catalog.pg_namespace.nspname").await,
        ["information_schema", "public"]
    );
    let enums = "SELECT pg_catalog.pg_type.typname AS name, pg_catalog.pg_type_is_visible(pg_catalog.pg_type.oid) AS visible, pg_catalog.pg_namespace.nspname AS schema, lbl_agg.labels AS labels FROM pg_catalog.pg_type JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_type.typnamespace LEFT OUTER JOIN (SELECT pg_catalog.pg_enum.enumtypid AS enumtypid, array_agg(CAST(pg_catalog.pg_enum.enumlabel AS TEXT) ORDER BY pg_catalog.pg_enum.enumsortorder) AS labels FROM pg_catalog.pg_enum GROUP BY pg_catalog.pg_enum.enumtypid) AS lbl_agg ON pg_catalog.pg_type.oid = lbl_agg.enumtypid WHERE pg_catalog.pg_type.typtype = 'e'::VARCHAR AND pg_catalog.pg_type_is_visible(pg_catalog.pg_type.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'::VARCHAR ORDER BY pg_catalog.pg_namespace.nspname, pg_catalog.pg_type.typname";
    assert!(rows(&session, enums).await.is_empty());
    let options = "SELECT pg_catalog.pg_class.oid, pg_catalog.pg_class.relname, pg_catalog.pg_class.reloptions, NULL AS relhasoids, CASE WHEN (pg_catalog.pg_am.amname IS NOT NULL AND pg_catalog.pg_am.amname != current_setting('default_table_access_method'::VARCHAR)) THEN pg_catalog.pg_am.amname ELSE NULL END AS access_method_name, pg_catalog.pg_tablespace.spcname AS tablespace_name, inherits.parent_table_names FROM pg_catalog.pg_class LEFT OUTER JOIN pg_catalog.pg_am ON pg_catalog.pg_class.relam = pg_catalog.pg_am.oid LEFT OUTER JOIN (SELECT pg_catalog.pg_inherits.inhrelid AS inhrelid, array_agg(pg_catalog.pg_class.relname ORDER BY pg_catalog.pg_inherits.inhseqno) AS parent_table_names FROM pg_catalog.pg_inherits JOIN pg_catalog.pg_class ON pg_catalog.pg_inherits.inhparent = pg_catalog.pg_class.oid GROUP BY pg_catalog.pg_inherits.inhrelid) AS inherits ON pg_catalog.pg_class.oid = inherits.inhrelid LEFT OUTER JOIN pg_catalog.pg_tablespace ON pg_catalog.pg_tablespace.oid = pg_catalog.pg_class.reltablespace JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace WHERE pg_catalog.pg_class.relkind = ANY (ARRAY['r'::VARCHAR, 'p'::VARCHAR, 'f'::VARCHAR, 'v'::VARCHAR, 'm'::VARCHAR]) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'::VARCHAR AND pg_catalog.pg_class.relname IN ('t'::VARCHAR)";
    assert_eq!(rows(&session, options).await, [format!("{oid}|t|NULL|NULL|NULL|NULL|NULL")]);
}

#[tokio::test]
async fn pgjdbc_database_metadata() {
    let (_dir, session) = session().await;
    let primary_keys = "SELECT        result.TABLE_CAT,        result.TABLE_SCHEM,        result.TABLE_NAME,        result.COLUMN_NAME,        result.KEY_SEQ,        result.PK_NAME FROM      (SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM,   ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME,   (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, ci.relname AS PK_NAME,   information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM FROM pg_catalog.pg_class ct   JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid)   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN pg_catalog.pg_index i ON ( a.attrelid = i.indrelid)   JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) WHERE true  AND n.nspname = 'public' AND ct.relname = 't' AND i.indisprimary  ) result where  result.A_ATTNUM = (result.KEYS).x  ORDER BY result.table_name, result.pk_name, result.key_seq";
    assert_eq!(
        rows(&session, primary_keys).await,
        ["NULL|public|t|k|1|t_pkey", "NULL|public|t|window_start|2|t_pkey"]
    );
    let index_info = "SELECT     tmp.TABLE_CAT,     tmp.TABLE_SCHEM,     tmp.TABLE_NAME,     tmp.NON_UNIQUE,     tmp.INDEX_QUALIFIER,     tmp.INDEX_NAME,     tmp.TYPE,     tmp.ORDINAL_POSITION,     trim(both '\"' from pg_catalog.pg_get_indexdef(tmp.CI_OID, tmp.ORDINAL_POSITION, false)) AS COLUMN_NAME,   CASE tmp.AM_NAME     WHEN 'btree' THEN CASE tmp.I_INDOPTION[tmp.ORDINAL_POSITION - 1] & 1::smallint       WHEN 1 THEN 'D'       ELSE 'A'     END     ELSE NULL   END AS ASC_OR_DESC,     tmp.CARDINALITY,     tmp.PAGES,     tmp.FILTER_CONDITION FROM (SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM,   ct.relname AS TABLE_NAME, NOT i.indisunique AS NON_UNIQUE,   NULL AS INDEX_QUALIFIER, ci.relname AS INDEX_NAME,   CASE i.indisclustered     WHEN true THEN 1    ELSE CASE am.amname       WHEN 'hash' THEN 2      ELSE 3    END   END AS TYPE,   (information_schema._pg_expandarray(i.indkey)).n AS ORDINAL_POSITION,   ci.reltuples AS CARDINALITY,   ci.relpages AS PAGES,   pg_catalog.pg_get_expr(i.indpred, i.indrelid) AS FILTER_CONDITION,   ci.oid AS CI_OID,   i.indoption AS I_INDOPTION,   am.amname AS AM_NAME FROM pg_catalog.pg_class ct   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN pg_catalog.pg_index i ON (ct.oid = i.indrelid)   JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid)   JOIN pg_catalog.pg_am am ON (ci.relam = am.oid) WHERE true  AND n.nspname = 'public' AND ct.relname = 't') AS tmp ORDER BY NON_UNIQUE, TYPE, INDEX_NAME, ORDINAL_POSITION ";
    assert_eq!(
        rows(&session, index_info).await,
        [
            "NULL|public|t|false|NULL|t_pkey|3|1|k|A|-1.0|0|NULL",
            "NULL|public|t|false|NULL|t_pkey|3|2|window_start|A|-1.0|0|NULL",
        ]
    );
    let best_row = "SELECT a.attname, a.atttypid, atttypmod FROM pg_catalog.pg_class ct   JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid)   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN (SELECT i.indexrelid, i.indrelid, i.indisprimary,              information_schema._pg_expandarray(i.indkey) AS keys         FROM pg_catalog.pg_index i) i     ON (a.attnum = (i.keys).x AND a.attrelid = i.indrelid) WHERE true  AND n.nspname = 'public' AND ct.relname = 't' AND i.indisprimary  ORDER BY a.attnum ";
    assert_eq!(rows(&session, best_row).await, ["k|1043|-1", "window_start|1114|-1"]);
    assert_eq!(
        rows(&session, "SELECT setting FROM pg_catalog.pg_settings WHERE name='max_index_keys'").await,
        ["32"]
    );
    let type_info = "SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid   FROM pg_catalog.pg_type   LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r           from pg_namespace as ns           join ( select s.r, (current_schemas(false))[s.r] as nspname                    from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r          using ( nspname )        ) as sp     ON sp.nspoid = typnamespace  ORDER BY sp.r, pg_type.oid DESC";
    let types = rows(&session, type_info).await;
    assert!(types.contains(&"true|b|_int8|1016".to_string()), "{types:?}");
    assert!(types.contains(&"false|b|int8|20".to_string()), "{types:?}");
    assert!(types.contains(&"false|p|trigger|2279".to_string()), "{types:?}");
    let functions = "SELECT current_database() AS FUNCTION_CAT, n.nspname AS FUNCTION_SCHEM, p.proname AS FUNCTION_NAME,  d.description AS REMARKS,  CASE    WHEN (format_type(p.prorettype, null) = 'unknown') THEN 0   WHEN      (substring(pg_get_function_result(p.oid) from 0 for 6) = 'TABLE') OR      (substring(pg_get_function_result(p.oid) from 0 for 6) = 'SETOF') THEN 2   ELSE 1 END  AS FUNCTION_TYPE,  p.proname || '_' || p.oid AS SPECIFIC_NAME FROM pg_catalog.pg_proc p INNER JOIN pg_catalog.pg_namespace n ON p.pronamespace=n.oid LEFT JOIN pg_catalog.pg_description d ON p.oid=d.objoid WHERE true   AND p.prokind='f' AND n.nspname LIKE '{schema}' AND p.proname LIKE '{name}' ORDER BY FUNCTION_SCHEM, FUNCTION_NAME, p.oid::text ";
    // Weir's functions are built in (pg_catalog); none are the user's.
    assert!(
        rows(&session, &functions.replace("{schema}", "public").replace("{name}", "%"))
            .await
            .is_empty()
    );
    let version = rows(&session, "SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'version'")
        .await
        .remove(0);
    assert_eq!(
        rows(&session, &functions.replace("{schema}", "pg_catalog").replace("{name}", "version")).await,
        [format!("weir|pg_catalog|version|NULL|1|version_{version}")]
    );
    let procedures = "SELECT NULL AS PROCEDURE_CAT, n.nspname AS PROCEDURE_SCHEM, p.proname AS PROCEDURE_NAME, NULL, NULL, NULL, d.description AS REMARKS, 2 AS PROCEDURE_TYPE,  p.proname || '_' || p.oid AS SPECIFIC_NAME  FROM pg_catalog.pg_namespace n, pg_catalog.pg_proc p  LEFT JOIN pg_catalog.pg_description d ON (p.oid=d.objoid)  LEFT JOIN pg_catalog.pg_class c ON (d.classoid=c.oid AND c.relname='pg_proc')  LEFT JOIN pg_catalog.pg_namespace pn ON (c.relnamespace=pn.oid AND pn.nspname='pg_catalog')  WHERE p.pronamespace=n.oid  AND p.prokind='p' AND n.nspname LIKE 'public' AND p.proname LIKE '%' ORDER BY PROCEDURE_SCHEM, PROCEDURE_NAME, p.oid::text ";
    assert!(rows(&session, procedures).await.is_empty());
    let keywords = rows(
        &session,
        "select string_agg(word, ',') from pg_catalog.pg_get_keywords() where word <> ALL ('{a,abs,select,from,ilike}'::text[])",
    )
    .await;
    assert!(
        keywords[0].contains(",where,") && !keywords[0].contains(",select,") && !keywords[0].contains(",ilike,"),
        "{keywords:?}"
    );
}

#[tokio::test]
async fn psql_and_pgcli_describe_functions_types_extensions_and_settings() {
    let (_dir, session) = session().await;
    let df = "SELECT n.nspname as \"Schema\",\n  p.proname as \"Name\",\n  pg_catalog.pg_get_function_result(p.oid) as \"Result data type\",\n  pg_catalog.pg_get_function_arguments(p.oid) as \"Argument data types\",\n CASE p.prokind\n  WHEN 'a' THEN 'agg'\n  WHEN 'w' THEN 'window'\n  WHEN 'p' THEN 'proc'\n  ELSE 'func'\n END as \"Type\"\nFROM pg_catalog.pg_proc p\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace\nWHERE pg_catalog.pg_function_is_visible(p.oid)\n      AND n.nspname <> 'pg_catalog'\n      AND n.nspname <> 'information_schema'\nORDER BY 1, 2, 4;";
    assert!(rows(&session, df).await.is_empty());
    // `\dfS now`-style: the built-in functions, described.
    assert_eq!(
        rows(&session, "SELECT p.proname, pg_catalog.pg_get_function_result(p.oid), pg_catalog.pg_get_function_arguments(p.oid), p.prokind FROM pg_catalog.pg_proc p WHERE p.proname IN ('version', 'pg_get_function_result', 'count') ORDER BY 1, 3").await,
        ["count|bigint||a", "count|anyelement|VARIADIC \"any\"|a", "pg_get_function_result|character varying|\"any\"|f", "version|character varying||f"]
    );
    let dt = "SELECT n.nspname as \"Schema\",\n  pg_catalog.format_type(t.oid, NULL) AS \"Name\",\n  pg_catalog.obj_description(t.oid, 'pg_type') as \"Description\"\nFROM pg_catalog.pg_type t\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace\nWHERE (t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))\n  AND NOT EXISTS(SELECT 1 FROM pg_catalog.pg_type el WHERE el.oid = t.typelem AND el.typarray = t.oid)\n      AND n.nspname <> 'pg_catalog'\n      AND n.nspname <> 'information_schema'\n  AND pg_catalog.pg_type_is_visible(t.oid)\nORDER BY 1, 2;";
    assert!(rows(&session, dt).await.is_empty());
    let dx = "SELECT e.extname AS \"Name\", e.extversion AS \"Version\", n.nspname AS \"Schema\", c.description AS \"Description\"\nFROM pg_catalog.pg_extension e LEFT JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace LEFT JOIN pg_catalog.pg_description c ON c.objoid = e.oid AND c.classoid = 'pg_catalog.pg_extension'::pg_catalog.regclass\nORDER BY 1;";
    assert!(rows(&session, dx).await.is_empty());
    let l_plus = "SELECT d.datname as \"Name\",\n       pg_catalog.pg_get_userbyid(d.datdba) as \"Owner\",\n       pg_catalog.pg_encoding_to_char(d.encoding) as \"Encoding\",\n       d.datcollate as \"Collate\",\n       d.datctype as \"Ctype\",\n       d.daticulocale as \"ICU Locale\",\n       CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS \"Locale Provider\",\n       pg_catalog.array_to_string(d.datacl, E'\\n') AS \"Access privileges\",\n       CASE WHEN pg_catalog.has_database_privilege(d.datname, 'CONNECT')\n            THEN pg_catalog.pg_size_pretty(pg_catalog.pg_database_size(d.datname))\n            ELSE 'No Access'\n       END as \"Size\",\n       t.spcname as \"Tablespace\",\n       pg_catalog.shobj_description(d.oid, 'pg_database') as \"Description\"\nFROM pg_catalog.pg_database d\n  JOIN pg_catalog.pg_tablespace t on d.dattablespace = t.oid\nORDER BY 1;";
    assert_eq!(
        rows(&session, l_plus).await,
        ["weir|weir|UTF8|C.UTF-8|C.UTF-8|NULL|libc|NULL|NULL|pg_default|NULL"]
    );
    assert_eq!(
        rows(&session, "SELECT spcname AS \"Name\", pg_catalog.pg_get_userbyid(spcowner) AS \"Owner\", pg_catalog.pg_tablespace_location(oid) AS \"Location\" FROM pg_catalog.pg_tablespace ORDER BY 1;").await,
        ["pg_default|weir|"]
    );
    assert_eq!(
        rows(
            &session,
            "SELECT EXISTS(SELECT * FROM pg_proc WHERE proname = 'pg_tablespace_location')"
        )
        .await,
        ["true"]
    );
    let dconfig = "SELECT s.name AS \"Parameter\", pg_catalog.current_setting(s.name) AS \"Value\"\nFROM pg_catalog.pg_settings s\nWHERE s.source <> 'default' AND\n      s.setting IS DISTINCT FROM s.boot_val\nORDER BY 1;";
    assert!(rows(&session, dconfig).await.is_empty());
    assert_eq!(
        rows(
            &session,
            "SELECT s.name, pg_catalog.current_setting(s.name) FROM pg_catalog.pg_settings s WHERE s.name LIKE 'server_v%' ORDER BY 1"
        )
        .await,
        ["server_version|16.0 (Weir)", "server_version_num|160000"]
    );
    // pgcli's column types and `\sf`.
    assert_eq!(
        rows(&session, "SELECT att.attname, att.atttypid::regtype::text type_name FROM pg_catalog.pg_attribute att JOIN pg_catalog.pg_class c ON c.oid = att.attrelid WHERE c.relname = 't' ORDER BY att.attnum").await,
        ["k|character varying", "window_start|timestamp without time zone", "cnt|bigint"]
    );
    let definition = rows(
        &session,
        "WITH f AS (SELECT 'now'::pg_catalog.regproc::pg_catalog.oid AS f_oid) SELECT pg_catalog.pg_get_functiondef(f.f_oid) FROM f",
    )
    .await;
    assert!(
        definition[0].starts_with("CREATE OR REPLACE FUNCTION pg_catalog.now()"),
        "{definition:?}"
    );
    let functions = "SELECT n.nspname schema_name, p.proname func_name, p.proargnames, COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::text[], p.proargmodes, prorettype::regtype::text return_type, p.prokind = 'a' is_aggregate, p.prokind = 'w' is_window, p.proretset is_set_returning, d.deptype = 'e' is_extension, pg_get_expr(proargdefaults, 0) AS arg_defaults FROM pg_catalog.pg_proc p INNER JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace LEFT JOIN pg_depend d ON d.objid = p.oid and d.deptype = 'e' WHERE p.prorettype::regtype != 'trigger'::regtype ORDER BY 1, 2";
    let listed = rows(&session, functions).await;
    assert!(
        listed.contains(&"pg_catalog|version|NULL|[]|NULL|character varying|false|false|false|NULL|NULL".to_string()),
        "{:?}",
        &listed[..5]
    );
}

#[tokio::test]
async fn session_functions_answer_for_weir() {
    let (_dir, session) = session().await;
    assert_eq!(
        rows(&session, "SELECT current_user, session_user, user, current_role, current_catalog, current_schema, current_database(), pg_catalog.current_database() AS qualified").await,
        ["weir|weir|weir|weir|weir|public|weir|weir"]
    );
    assert_eq!(
        rows(&session, "SELECT pg_is_in_recovery(), current_setting('server_version_num')::int/100 as version, set_config('application_name', 'x', false), current_setting('jit', true), current_setting('no_such.setting', true), pg_advisory_unlock_all()").await,
        ["false|1600|x|off|NULL|NULL"]
    );
    let unknown = error(
        &session,
        "SELECT current_setting('no_such_setting') AS cur, set_config('no_such_setting', 'off', false) AS new",
    )
    .await;
    assert_eq!(unknown.sqlstate(), "42704");
    assert!(
        unknown
            .to_string()
            .contains("unrecognized configuration parameter \"no_such_setting\""),
        "{unknown}"
    );
    assert_eq!(
        rows(&session, "SELECT has_table_privilege('t', 'select'), has_table_privilege(current_user, 'public.t', 'INSERT'), has_any_column_privilege('\"public\".\"t\"', 'select'), has_schema_privilege(current_user, 'public', 'usage'), has_database_privilege('weir', 'CONNECT')").await,
        ["true|false|true|true|true"]
    );
    assert_eq!(
        error(&session, "SELECT has_table_privilege('nosuch', 'select')").await.sqlstate(),
        "42P01"
    );
    assert_eq!(
        rows(&session, "SELECT array_lower(ARRAY[1, 2], 1), array_lower(ARRAY[1], 2), parse_ident('\"A\".b'), (parse_ident('public.t'))[2], pg_typeof(1)::text, pg_backend_pid() > 0").await,
        ["1|NULL|[A, b]|t|bigint|true"]
    );
}

#[tokio::test]
async fn grafana_and_metabase_data_source_queries() {
    let (_dir, session) = session().await;
    let search_path = "SELECT CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END FROM generate_series(array_lower(string_to_array(current_setting('search_path'),','),1), array_upper(string_to_array(current_setting('search_path'),','),1)) as i, string_to_array(current_setting('search_path'),',') s";
    let mut schemas = rows(&session, search_path).await;
    schemas.sort();
    assert_eq!(schemas, ["public", "weir"]);
    assert!(
        rows(&session, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
            .await
            .is_empty()
    );
    // Grafana's showTables(): that subquery inside CASE (`planner/subquery_apply.rs` runs it).
    let show_tables = format!(
        "SELECT CASE WHEN quote_ident(table_schema) IN ({search_path}) THEN quote_ident(table_name) \
         ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS \"table\" \
         FROM information_schema.tables \
         WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_internal', '_timescaledb_config', 'timescaledb_information', 'timescaledb_experimental') \
         ORDER BY CASE WHEN quote_ident(table_schema) IN ({search_path}) THEN 0 ELSE 1 END, 1"
    );
    assert_eq!(rows(&session, &show_tables).await, ["ev", "t", "weir_jobs", "weir_savepoints"]);
    assert_eq!(
        rows(&session, "SELECT current_setting('server_version_num')::int/100 as version").await,
        ["1600"]
    );
    assert_eq!(
        rows(&session, "SELECT array_length(parse_ident('t'),1), (parse_ident('public.t'))[1]").await,
        ["1|public"]
    );

    let describe_database = "SELECT n.nspname AS schema, c.relname AS name, CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS type, d.description AS description, stat.n_live_tup AS estimated_row_count FROM pg_catalog.pg_class AS c INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid LEFT JOIN pg_catalog.pg_description AS d ON (c.oid = d.objoid) AND (d.objsubid = 0) AND (d.classoid = 'pg_class'::regclass) LEFT JOIN pg_stat_user_tables AS stat ON (n.nspname = stat.schemaname) AND (c.relname = stat.relname) WHERE (c.relnamespace = n.oid) AND (n.nspname !~ '^pg_') AND (n.nspname <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND (n.nspname IN ('public')) ORDER BY type ASC, schema ASC, name ASC";
    assert_eq!(
        rows(&session, describe_database).await,
        [
            "public|ev|FOREIGN TABLE|NULL|NULL",
            "public|t|TABLE|NULL|NULL",
            "public|weir_jobs|VIEW|NULL|NULL",
            "public|weir_savepoints|VIEW|NULL|NULL"
        ]
    );
    let privileges = "with table_privileges as (\n select\n   NULL as role,\n   t.schemaname as schema,\n   t.objectname as table,\n   pg_catalog.has_any_column_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"',  'update') as update,\n   pg_catalog.has_any_column_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"',  'select') as select,\n   pg_catalog.has_any_column_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"',  'insert') as insert,\n   pg_catalog.has_table_privilege(     current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"',  'delete') as delete\n from (\n   select schemaname, tablename as objectname from pg_catalog.pg_tables\n   union\n   select schemaname, viewname as objectname from pg_catalog.pg_views\n   union\n   select schemaname, matviewname as objectname from pg_catalog.pg_matviews\n ) t\n where t.schemaname !~ '^pg_'\n   and t.schemaname <> 'information_schema'\n   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')\n)\nselect t.*\nfrom table_privileges t;";
    // A UNION: no order.
    let mut granted = rows(&session, privileges).await;
    granted.sort();
    assert_eq!(
        granted,
        [
            "NULL|public|t|false|true|false|false",
            "NULL|public|weir_jobs|false|true|false|false",
            "NULL|public|weir_savepoints|false|true|false|false"
        ]
    );
    let keys = "SELECT \"tc\".\"table_schema\", \"tc\".\"table_name\", \"kc\".\"column_name\" FROM \"information_schema\".\"table_constraints\" AS \"tc\" INNER JOIN \"information_schema\".\"key_column_usage\" AS \"kc\" ON (\"tc\".\"constraint_name\" = \"kc\".\"constraint_name\") AND (\"tc\".\"table_schema\" = \"kc\".\"table_schema\") AND (\"tc\".\"table_name\" = \"kc\".\"table_name\") WHERE \"tc\".\"constraint_type\" = 'PRIMARY KEY' ORDER BY 3";
    assert_eq!(rows(&session, keys).await, ["public|t|k", "public|t|window_start"]);
    let indexes = "SELECT \"tmp\".\"table-schema\", \"tmp\".\"table-name\", TRIM(BOTH '\"' FROM PG_CATALOG.PG_GET_INDEXDEF(\"tmp\".\"ci_oid\", \"tmp\".\"pos\", FALSE)) AS \"field-name\" FROM (SELECT \"n\".\"nspname\" AS \"table-schema\", \"ct\".\"relname\" AS \"table-name\", \"ci\".\"oid\" AS \"ci_oid\", (INFORMATION_SCHEMA._PG_EXPANDARRAY(\"i\".\"indkey\")).n AS \"pos\" FROM \"pg_catalog\".\"pg_class\" AS \"ct\" INNER JOIN \"pg_catalog\".\"pg_namespace\" AS \"n\" ON \"ct\".\"relnamespace\" = \"n\".\"oid\" INNER JOIN \"pg_catalog\".\"pg_index\" AS \"i\" ON \"ct\".\"oid\" = \"i\".\"indrelid\" INNER JOIN \"pg_catalog\".\"pg_class\" AS \"ci\" ON \"ci\".\"oid\" = \"i\".\"indexrelid\" WHERE (PG_CATALOG.PG_GET_EXPR(\"i\".\"indpred\", \"i\".\"indrelid\") IS NULL) AND n.nspname !~ '^information_schema|catalog_history|pg_' AND (\"n\".\"nspname\" IN ('public')) AND (\"ct\".\"relname\" IN ('t'))) AS \"tmp\" WHERE \"tmp\".\"pos\" = 1;";
    assert_eq!(rows(&session, indexes).await, ["public|t|k"]);
    assert!(rows(&session, "SELECT nspname, typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid IN (SELECT DISTINCT enumtypid FROM pg_enum e);").await.is_empty());
}
