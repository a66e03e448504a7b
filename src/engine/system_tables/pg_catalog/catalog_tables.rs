//! The catalog tables built from Weir's relations: `pg_namespace`, `pg_class`, `pg_attribute`,
//! `pg_index`, `pg_constraint`, `pg_type` and the others `refresh` registers in one pass (the views
//! over them are in `system_views`, `information_schema` in its own file).

use super::*;

pub(super) fn tables(relations: &[Relation], procs: &[procs::Proc]) -> Result<Vec<(&'static str, Arc<MemTable>)>> {
    use DataType::{Boolean, Int16, Int32, Int64, Utf8};
    let n = relations.len();
    let namespaces = table(vec![
        ("oid", int64([PG_CATALOG_NAMESPACE, PUBLIC_NAMESPACE, INFORMATION_SCHEMA_NAMESPACE])),
        ("nspname", text(["pg_catalog", "public", "information_schema"])),
        ("nspowner", repeat_int64(OWNER, 3)),
        ("nspacl", nulls(&text_array_type(), 3)),
    ])?;
    let classes = table(vec![
        ("oid", int64(relations.iter().map(|r| r.oid))),
        ("relname", text(relations.iter().map(|r| r.name.as_str()))),
        ("relnamespace", repeat_int64(PUBLIC_NAMESPACE, n)),
        ("reltype", repeat_int64(0, n)),
        ("reloftype", repeat_int64(0, n)),
        ("relowner", repeat_int64(OWNER, n)),
        ("relam", int64(relations.iter().map(|r| r.am))),
        ("relfilenode", int64(relations.iter().map(|r| r.oid))),
        ("reltablespace", repeat_int64(0, n)),
        ("relpages", repeat_int32(0, n)),
        ("reltuples", Arc::new(Float32Array::from(vec![-1.0; n]))),
        ("relallvisible", repeat_int32(0, n)),
        ("reltoastrelid", repeat_int64(0, n)),
        ("relhasindex", boolean(relations.iter().map(|r| r.primary_key.is_some()))),
        ("relisshared", repeat_bool(false, n)),
        ("relpersistence", repeat_text("p", n)),
        ("relkind", text(relations.iter().map(|r| r.kind.relkind()))),
        (
            "relnatts",
            int16(relations.iter().map(|r| i16::try_from(r.attributes.len()).unwrap_or(i16::MAX))),
        ),
        ("relchecks", repeat_int16(0, n)),
        ("relhasrules", repeat_bool(false, n)),
        ("relhastriggers", repeat_bool(false, n)),
        ("relhassubclass", repeat_bool(false, n)),
        ("relrowsecurity", repeat_bool(false, n)),
        ("relforcerowsecurity", repeat_bool(false, n)),
        ("relispopulated", repeat_bool(true, n)),
        ("relreplident", repeat_text("d", n)),
        ("relispartition", repeat_bool(false, n)),
        ("relrewrite", repeat_int64(0, n)),
        ("relacl", nulls(&text_array_type(), n)),
        ("reloptions", nulls(&text_array_type(), n)),
        ("relpartbound", nulls(&Utf8, n)),
    ])?;

    let attributes: Vec<(&Relation, i16, &Attribute)> = relations
        .iter()
        .flat_map(|r| r.attributes.iter().zip(1i16..).map(move |(a, number)| (r, number, a)))
        .collect();
    let a = attributes.len();
    let pg_attribute = table(vec![
        ("attrelid", int64(attributes.iter().map(|(r, _, _)| r.oid))),
        ("attname", text(attributes.iter().map(|(_, _, a)| a.name.as_str()))),
        // The one `oid` column sent as oid: `array_agg(atttypid)` must be an oid[], the only
        // integer array asyncpg decodes before it has looked any type up (its type lookup reads one).
        ("atttypid", oids(attributes.iter().map(|(_, _, a)| a.pg.oid()))),
        ("attstattarget", repeat_int32(-1, a)),
        ("attlen", int16(attributes.iter().map(|(_, _, a)| type_length(&a.pg)))),
        ("attnum", int16(attributes.iter().map(|(_, number, _)| *number))),
        ("attndims", repeat_int32(0, a)),
        ("attcacheoff", repeat_int32(-1, a)),
        ("atttypmod", repeat_int32(-1, a)),
        (
            "attbyval",
            boolean(attributes.iter().map(|(_, _, a)| (1..=8).contains(&type_length(&a.pg)))),
        ),
        ("attalign", repeat_text("d", a)),
        // Variable-length values may be compressed and moved out of line ('x'), fixed ones are plain.
        (
            "attstorage",
            text(attributes.iter().map(|(_, _, a)| if type_length(&a.pg) < 0 { "x" } else { "p" })),
        ),
        ("attcompression", repeat_text("", a)),
        ("attnotnull", boolean(attributes.iter().map(|(_, _, a)| a.not_null))),
        ("atthasdef", repeat_bool(false, a)),
        ("atthasmissing", repeat_bool(false, a)),
        ("attidentity", repeat_text("", a)),
        ("attgenerated", repeat_text("", a)),
        ("attisdropped", repeat_bool(false, a)),
        ("attislocal", repeat_bool(true, a)),
        ("attinhcount", repeat_int32(0, a)),
        ("attcollation", int64(attributes.iter().map(|(_, _, a)| collation_of(&a.pg)))),
        ("attacl", nulls(&text_array_type(), a)),
        ("attoptions", nulls(&text_array_type(), a)),
        ("attfdwoptions", nulls(&text_array_type(), a)),
    ])?;

    let types = type_rows();
    let t = types.len();
    let io = |row: &TypeRow, which: usize| procs::io_function_oid(procs, &row.pg, row.element.is_some(), which);
    let pg_type_table = table(vec![
        ("oid", int64(types.iter().map(|row| i64::from(row.pg.oid())))),
        ("typname", text(types.iter().map(|row| row.pg.name()))),
        ("typnamespace", repeat_int64(PG_CATALOG_NAMESPACE, t)),
        ("typowner", repeat_int64(OWNER, t)),
        ("typlen", int16(types.iter().map(|row| row.length))),
        ("typbyval", boolean(types.iter().map(|row| (1..=8).contains(&row.length)))),
        ("typtype", text(types.iter().map(|row| if row.category == "P" { "p" } else { "b" }))),
        ("typcategory", text(types.iter().map(|row| row.category))),
        ("typispreferred", repeat_bool(false, t)),
        ("typisdefined", repeat_bool(true, t)),
        ("typdelim", repeat_text(",", t)),
        ("typrelid", repeat_int64(0, t)),
        ("typsubscript", repeat_int64(0, t)),
        (
            "typelem",
            int64(types.iter().map(|row| row.element.as_ref().map_or(0, |e| i64::from(e.oid())))),
        ),
        (
            "typarray",
            int64(types.iter().map(|row| row.array.as_ref().map_or(0, |a| i64::from(a.oid())))),
        ),
        ("typinput", int64(types.iter().map(|row| io(row, 0)))),
        ("typoutput", int64(types.iter().map(|row| io(row, 1)))),
        ("typreceive", int64(types.iter().map(|row| io(row, 2)))),
        ("typsend", int64(types.iter().map(|row| io(row, 3)))),
        ("typmodin", repeat_int64(0, t)),
        ("typmodout", repeat_int64(0, t)),
        ("typanalyze", repeat_int64(0, t)),
        (
            "typalign",
            text(types.iter().map(|row| match row.length {
                1 => "c",
                2 => "s",
                4 => "i",
                _ => "d",
            })),
        ),
        ("typstorage", text(types.iter().map(|row| if row.length < 0 { "x" } else { "p" }))),
        ("typnotnull", repeat_bool(false, t)),
        ("typbasetype", repeat_int64(0, t)),
        ("typtypmod", repeat_int32(-1, t)),
        ("typndims", repeat_int32(0, t)),
        ("typcollation", int64(types.iter().map(|row| collation_of(&row.pg)))),
        ("typdefaultbin", nulls(&Utf8, t)),
        ("typdefault", nulls(&Utf8, t)),
        ("typacl", nulls(&text_array_type(), t)),
    ])?;

    let keyed: Vec<(&Relation, &PrimaryKey)> = relations.iter().filter_map(|r| Some((r, r.primary_key.as_ref()?))).collect();
    let k = keyed.len();
    let pg_index = table(vec![
        ("indexrelid", int64(keyed.iter().map(|(_, key)| key.index_oid))),
        ("indrelid", int64(keyed.iter().map(|(r, _)| r.oid))),
        ("indnatts", int16(keyed.iter().map(|(_, key)| key.columns.len() as i16))),
        ("indnkeyatts", int16(keyed.iter().map(|(_, key)| key.columns.len() as i16))),
        ("indisunique", repeat_bool(true, k)),
        ("indnullsnotdistinct", repeat_bool(false, k)),
        ("indisprimary", repeat_bool(true, k)),
        ("indisexclusion", repeat_bool(false, k)),
        ("indimmediate", repeat_bool(true, k)),
        ("indisclustered", repeat_bool(false, k)),
        ("indisvalid", repeat_bool(true, k)),
        ("indcheckxmin", repeat_bool(false, k)),
        ("indisready", repeat_bool(true, k)),
        ("indislive", repeat_bool(true, k)),
        ("indisreplident", repeat_bool(false, k)),
        ("indkey", int16_lists(keyed.iter().map(|(_, key)| key.columns.clone()))),
        // Key columns collate as their type does, with the type's default btree operator class
        // (Weir has none of its own: `pg_opclass` is empty, so 0) and ascending, NULLS LAST (0).
        (
            "indcollation",
            int64_lists(keyed.iter().map(|(r, key)| {
                key.columns
                    .iter()
                    .map(|n| {
                        usize::try_from(*n)
                            .ok()
                            .and_then(|n| r.attributes.get(n.checked_sub(1)?))
                            .map_or(0, |a| collation_of(&a.pg))
                    })
                    .collect()
            })),
        ),
        ("indclass", int64_lists(keyed.iter().map(|(_, key)| vec![0; key.columns.len()]))),
        ("indoption", int16_lists(keyed.iter().map(|(_, key)| vec![0; key.columns.len()]))),
        ("indexprs", nulls(&Utf8, k)),
        ("indpred", nulls(&Utf8, k)),
    ])?;
    let pg_constraint = table(vec![
        ("oid", int64(keyed.iter().map(|(_, key)| key.constraint_oid))),
        ("conname", text(keyed.iter().map(|(_, key)| key.name.as_str()))),
        ("connamespace", repeat_int64(PUBLIC_NAMESPACE, k)),
        ("contype", repeat_text("p", k)),
        ("condeferrable", repeat_bool(false, k)),
        ("condeferred", repeat_bool(false, k)),
        ("convalidated", repeat_bool(true, k)),
        ("conrelid", int64(keyed.iter().map(|(r, _)| r.oid))),
        ("contypid", repeat_int64(0, k)),
        ("conindid", int64(keyed.iter().map(|(_, key)| key.index_oid))),
        ("conparentid", repeat_int64(0, k)),
        ("confrelid", repeat_int64(0, k)),
        ("confupdtype", repeat_text(" ", k)),
        ("confdeltype", repeat_text(" ", k)),
        ("confmatchtype", repeat_text(" ", k)),
        ("conislocal", repeat_bool(true, k)),
        ("coninhcount", repeat_int32(0, k)),
        ("connoinherit", repeat_bool(true, k)),
        ("conkey", int16_lists(keyed.iter().map(|(_, key)| key.columns.clone()))),
        ("confkey", nulls(&DataType::new_list(Int16, true), k)),
        ("conbin", nulls(&Utf8, k)),
    ])?;

    let methods = table(vec![
        ("oid", int64([HEAP_AM, BTREE_AM])),
        ("amname", text(["heap", "btree"])),
        ("amhandler", text(["heap_tableam_handler", "bthandler"])),
        ("amtype", text(["t", "i"])),
    ])?;
    let collations = table(vec![
        ("oid", int64([DEFAULT_COLLATION, 950, 951])),
        ("collname", text(["default", "C", "POSIX"])),
        ("collnamespace", repeat_int64(PG_CATALOG_NAMESPACE, 3)),
        ("collowner", repeat_int64(OWNER, 3)),
        ("collprovider", text(["d", "c", "c"])),
        ("collisdeterministic", repeat_bool(true, 3)),
        ("collencoding", int32([-1, -1, -1])),
        ("collcollate", text(["", "C", "POSIX"])),
        ("collctype", text(["", "C", "POSIX"])),
    ])?;
    let databases = table(vec![
        ("oid", int64([DATABASE_OID])),
        ("datname", text(["weir"])),
        ("datdba", int64([OWNER])),
        ("encoding", int64([6])),
        ("datcollate", text(["C.UTF-8"])),
        ("datctype", text(["C.UTF-8"])),
        ("daticulocale", nulls(&Utf8, 1)),
        ("daticurules", nulls(&Utf8, 1)),
        ("datlocprovider", text(["c"])),
        ("datacl", nulls(&text_array_type(), 1)),
        ("dattablespace", int64([system_views::DEFAULT_TABLESPACE])),
    ])?;

    // The one role (see OWNER): a superuser that can log in.
    let roles = table(vec![
        ("oid", int64([OWNER])),
        ("rolname", text(["weir"])),
        ("rolsuper", boolean([true])),
        ("rolinherit", boolean([true])),
        ("rolcreaterole", boolean([true])),
        ("rolcreatedb", boolean([true])),
        ("rolcanlogin", boolean([true])),
        ("rolreplication", boolean([false])),
        ("rolbypassrls", boolean([true])),
        ("rolconnlimit", int32([-1])),
        ("rolpassword", text(["********"])),
        ("rolvaliduntil", nulls(&Utf8, 1)),
        ("rolconfig", nulls(&text_array_type(), 1)),
    ])?;

    // Sources as foreign tables: one foreign-data wrapper (Weir), one server per connector.
    let sources: Vec<(&Relation, &String, &Vec<String>)> = relations
        .iter()
        .filter_map(|r| r.foreign.as_ref().map(|(connector, options)| (r, connector, options)))
        .collect();
    let connectors: Vec<&String> = sources
        .iter()
        .map(|(_, c, _)| *c)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let server_oid = |connector: &String| FIRST_SERVER_OID + connectors.iter().position(|c| *c == connector).unwrap_or(0) as i64;
    let s = connectors.len();
    let wrappers = table(vec![
        ("oid", int64([FOREIGN_DATA_WRAPPER])),
        ("fdwname", text(["weir"])),
        ("fdwowner", int64([OWNER])),
        ("fdwhandler", int64([0])),
        ("fdwvalidator", int64([0])),
        ("fdwacl", nulls(&text_array_type(), 1)),
        ("fdwoptions", nulls(&text_array_type(), 1)),
    ])?;
    let servers = table(vec![
        ("oid", int64(connectors.iter().map(|c| server_oid(c)))),
        ("srvname", text(connectors.iter().map(|c| c.as_str()))),
        ("srvowner", repeat_int64(OWNER, s)),
        ("srvfdw", repeat_int64(FOREIGN_DATA_WRAPPER, s)),
        ("srvtype", nulls(&Utf8, s)),
        ("srvversion", nulls(&Utf8, s)),
        ("srvacl", nulls(&text_array_type(), s)),
        ("srvoptions", nulls(&text_array_type(), s)),
    ])?;
    let foreign_tables = table(vec![
        ("ftrelid", int64(sources.iter().map(|(r, _, _)| r.oid))),
        ("ftserver", int64(sources.iter().map(|(_, c, _)| server_oid(c)))),
        ("ftoptions", text_lists(sources.iter().map(|(_, _, options)| options.as_slice()))?),
    ])?;

    let mut all = vec![
        ("pg_namespace", namespaces),
        ("pg_class", classes),
        ("pg_attribute", pg_attribute),
        ("pg_type", pg_type_table),
        ("pg_index", pg_index),
        ("pg_constraint", pg_constraint),
        ("pg_am", methods),
        ("pg_collation", collations),
        ("pg_database", databases),
        ("pg_roles", roles),
        ("pg_foreign_data_wrapper", wrappers),
        ("pg_foreign_server", servers),
        ("pg_foreign_table", foreign_tables),
        ("pg_proc", procs::proc_table(procs)?),
        ("pg_settings", settings::settings_table()?),
    ];
    all.extend(system_views::tables(relations)?);
    let oid = Int64;
    let list = DataType::new_list(Int16, true);
    for (name, columns) in [
        (
            "pg_attrdef",
            vec![("oid", oid.clone()), ("adrelid", oid.clone()), ("adnum", Int16), ("adbin", Utf8)],
        ),
        (
            "pg_inherits",
            vec![
                ("inhrelid", oid.clone()),
                ("inhparent", oid.clone()),
                ("inhseqno", Int32),
                ("inhdetachpending", Boolean),
            ],
        ),
        (
            "pg_policy",
            vec![
                ("oid", oid.clone()),
                ("polname", Utf8),
                ("polrelid", oid.clone()),
                ("polcmd", Utf8),
                ("polpermissive", Boolean),
                ("polroles", DataType::new_list(Int64, true)),
                ("polqual", Utf8),
                ("polwithcheck", Utf8),
            ],
        ),
        (
            "pg_statistic_ext",
            vec![
                ("oid", oid.clone()),
                ("stxrelid", oid.clone()),
                ("stxname", Utf8),
                ("stxnamespace", oid.clone()),
                ("stxowner", oid.clone()),
                ("stxstattarget", Int32),
                ("stxkeys", list.clone()),
                ("stxkind", text_array_type()),
                ("stxexprs", Utf8),
            ],
        ),
        (
            "pg_publication",
            vec![
                ("oid", oid.clone()),
                ("pubname", Utf8),
                ("pubowner", oid.clone()),
                ("puballtables", Boolean),
                ("pubinsert", Boolean),
                ("pubupdate", Boolean),
                ("pubdelete", Boolean),
                ("pubtruncate", Boolean),
                ("pubviaroot", Boolean),
            ],
        ),
        (
            "pg_publication_rel",
            vec![
                ("oid", oid.clone()),
                ("prpubid", oid.clone()),
                ("prrelid", oid.clone()),
                ("prqual", Utf8),
                ("prattrs", list.clone()),
            ],
        ),
        (
            "pg_publication_namespace",
            vec![("oid", oid.clone()), ("pnpubid", oid.clone()), ("pnnspid", oid.clone())],
        ),
        (
            "pg_trigger",
            vec![
                ("oid", oid.clone()),
                ("tgrelid", oid.clone()),
                ("tgparentid", oid.clone()),
                ("tgname", Utf8),
                ("tgfoid", oid.clone()),
                ("tgtype", Int16),
                ("tgenabled", Utf8),
                ("tgisinternal", Boolean),
                ("tgconstrrelid", oid.clone()),
                ("tgconstrindid", oid.clone()),
                ("tgconstraint", oid.clone()),
                ("tgdeferrable", Boolean),
                ("tginitdeferred", Boolean),
                ("tgnargs", Int16),
                ("tgattr", list.clone()),
                ("tgargs", Utf8),
                ("tgqual", Utf8),
                ("tgoldtable", Utf8),
                ("tgnewtable", Utf8),
            ],
        ),
        (
            "pg_auth_members",
            vec![
                ("oid", oid.clone()),
                ("roleid", oid.clone()),
                ("member", oid.clone()),
                ("grantor", oid.clone()),
                ("admin_option", Boolean),
            ],
        ),
        (
            "pg_rewrite",
            vec![
                ("oid", oid.clone()),
                ("rulename", Utf8),
                ("ev_class", oid.clone()),
                ("ev_type", Utf8),
                ("ev_enabled", Utf8),
                ("is_instead", Boolean),
                ("ev_qual", Utf8),
                ("ev_action", Utf8),
            ],
        ),
        (
            "pg_depend",
            vec![
                ("classid", oid.clone()),
                ("objid", oid.clone()),
                ("objsubid", Int32),
                ("refclassid", oid.clone()),
                ("refobjid", oid.clone()),
                ("refobjsubid", Int32),
                ("deptype", Utf8),
            ],
        ),
        (
            "pg_description",
            vec![
                ("objoid", oid.clone()),
                ("classoid", oid.clone()),
                ("objsubid", Int32),
                ("description", Utf8),
            ],
        ),
        // Weir has no sequences (identity columns) and no operator classes of its own.
        (
            "pg_sequence",
            vec![
                ("seqrelid", oid.clone()),
                ("seqtypid", oid.clone()),
                ("seqstart", Int64),
                ("seqincrement", Int64),
                ("seqmax", Int64),
                ("seqmin", Int64),
                ("seqcache", Int64),
                ("seqcycle", Boolean),
            ],
        ),
        (
            "pg_opclass",
            vec![
                ("oid", oid.clone()),
                ("opcmethod", oid.clone()),
                ("opcname", Utf8),
                ("opcnamespace", oid.clone()),
                ("opcowner", oid.clone()),
                ("opcfamily", oid.clone()),
                ("opcintype", oid.clone()),
                ("opcdefault", Boolean),
                ("opckeytype", oid.clone()),
            ],
        ),
    ] {
        all.push((name, empty_table(&columns)?));
    }
    Ok(all)
}
