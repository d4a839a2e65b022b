//! CREATE TABLE, DROP TABLE and CREATE EXTENSION: catalog changes.

use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, ObjectName, ObjectNamePart, ObjectType, Statement, TableConstraint,
};
use tempora_catalog::{
    CatalogOp, CatalogState, ColumnDef, PgType, SequenceDef, TableDef, UniqueKey,
};
use tempora_common::{Result, SqlState, TemporaError};

use crate::{Notice, Outcome, SqlSession};

pub(crate) fn is_ddl(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::CreateTable(_)
            | Statement::Drop { .. }
            | Statement::CreateExtension(_)
            | Statement::CreateIndex(_)
            | Statement::AlterTable(_)
            | Statement::Truncate(_)
            | Statement::CreateView(_)
            | Statement::CreateSchema { .. }
            | Statement::Comment { .. }
            | Statement::CreateFunction(_)
            | Statement::DropFunction(_)
    ) || crate::roles::is_role_statement(stmt)
}

/// Whether a DEFAULT gives each row its own value (a sequence's, a random
/// one): evaluated per row, never once for many.
pub(crate) fn is_volatile(default: &str) -> bool {
    let d = default.to_lowercase();
    [
        "random(",
        "nextval(",
        "gen_random_uuid(",
        "uuid(",
        "clock_timestamp(",
        "timeofday(",
    ]
    .iter()
    .any(|f| d.contains(f))
}

/// An identifier quoted for SQL text Tempora writes itself (always
/// quoted, so any name reads back as it is).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`, for SQL text Tempora writes itself.
pub(crate) fn quoted_table(table: &TableDef) -> String {
    format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    )
}

/// The table a statement writes or copies (`verb`: `insert into`,
/// `update`, `delete from`, `copy to` for COPY FROM, `copy from` for COPY TO). A view gives
/// PostgreSQL's error for views that cannot be written (a continuous
/// aggregate's rows are its refreshes'); no relation, 42P01.
pub(crate) fn written_table<'a>(
    state: &'a tempora_catalog::CatalogState,
    schema: &str,
    name: &str,
    verb: &str,
) -> Result<&'a TableDef> {
    if let Some(t) = state.table(schema, name) {
        return Ok(t);
    }
    match state.view(schema, name) {
        Some(v) if v.materialized.is_some() => Err(if verb.starts_with("copy") {
            TemporaError::new(
                SqlState::WRONG_OBJECT_TYPE,
                format!("cannot {verb} materialized view \"{name}\""),
            )
            .with_hint("Try the COPY (SELECT ...) TO variant.")
        } else {
            TemporaError::new(
                SqlState::WRONG_OBJECT_TYPE,
                format!("cannot change materialized view \"{name}\""),
            )
        }),
        Some(_) if verb.starts_with("copy") => Err(TemporaError::new(
            SqlState::WRONG_OBJECT_TYPE,
            format!("cannot {verb} view \"{name}\""),
        )
        .with_hint(if verb == "copy from" {
            "Try the COPY (SELECT ...) TO variant."
        } else {
            "To enable copying to a view, provide an INSTEAD OF INSERT trigger."
        })),
        Some(v) if v.continuous.is_some() => Err(TemporaError::new(
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot {verb} view \"{name}\""),
        )
        .with_detail("Views that return aggregate functions are not automatically updatable.")),
        Some(_) => Err(TemporaError::not_supported(format!(
            "{} a view (\"{name}\")",
            verb.to_uppercase()
        ))),
        None => Err(TemporaError::undefined_table(name)),
    }
}

/// PostgreSQL's error for a name in a schema that does not exist.
pub(crate) fn no_schema(schema: &str) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_SCHEMA_NAME,
        format!("schema \"{schema}\" does not exist"),
    )
}

/// A column name printed by sqlparser (`a` or `"A"`), folded.
fn fold(printed: String) -> String {
    match printed.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => printed.to_lowercase(),
    }
}

/// An identifier as PostgreSQL folds it: lower case unless quoted.
pub(crate) fn ident_name(i: &datafusion::sql::sqlparser::ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// Schema and table of an object name, folded as PostgreSQL folds identifiers
/// (sqlparser keeps quoted identifiers' case and quote style).
pub(crate) fn object_name(name: &ObjectName) -> Result<(String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => ident_name(i),
            other => other.to_string().to_lowercase(),
        })
        .collect();
    match parts.as_slice() {
        [t] => Ok((tempora_query::PUBLIC.into(), t.clone())),
        [s, t] => Ok((s.clone(), t.clone())),
        [_db, s, t] => Ok((s.clone(), t.clone())),
        _ => Err(TemporaError::syntax(format!(
            "improper qualified name (too many dotted names): {name}"
        ))),
    }
}

/// Maps a SQL type name to a column type.
pub(crate) fn pg_type(sql_type: &str) -> Result<PgType> {
    let t = sql_type.trim().to_lowercase();
    let (base, args) = match t.split_once('(') {
        Some((b, rest)) => (
            b.trim().to_string(),
            Some(rest.trim_end_matches(')').to_string()),
        ),
        None => (t.clone(), None),
    };
    let nums: Vec<u32> = args
        .as_deref()
        .map(|a| a.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default();
    Ok(match base.as_str() {
        "bool" | "boolean" => PgType::Bool,
        "int2" | "smallint" => PgType::Int2,
        "int" | "int4" | "integer" => PgType::Int4,
        "int8" | "bigint" => PgType::Int8,
        "real" | "float4" => PgType::Float4,
        "double precision" | "float8" | "float" => PgType::Float8,
        "text" => PgType::Text,
        "varchar" | "character varying" => PgType::Varchar(nums.first().copied()),
        "timestamptz" | "timestamp with time zone" => PgType::Timestamptz,
        "timestamp" | "timestamp without time zone" => PgType::Timestamp,
        "date" => PgType::Date,
        "bytea" => PgType::Bytea,
        "json" => PgType::Json,
        "jsonb" => PgType::Jsonb,
        "uuid" => PgType::Uuid,
        "numeric" | "decimal" => {
            let precision = nums.first().copied().unwrap_or(38);
            let scale = nums
                .get(1)
                .copied()
                .unwrap_or(if nums.is_empty() { 10 } else { 0 });
            if !(1..=38).contains(&precision) || scale > precision {
                return Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("NUMERIC precision {precision} must be between 1 and 38"),
                ));
            }
            PgType::Numeric {
                precision: precision as u8,
                scale: scale as i8,
            }
        }
        _ => {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("type \"{sql_type}\" does not exist"),
            ))
        }
    })
}

/// The DEFAULT a `serial` or identity column gets until its sequence is
/// named (`nextval('<table>_<column>_seq')`, see [`with_sequences`]).
const SEQUENCE_DEFAULT: &str = "nextval(<sequence>)";

/// The sequences of a new table's `serial` and identity columns (oids after
/// the table's), their names chosen as PostgreSQL chooses them, and the
/// columns' defaults pointing at them.
fn with_sequences(state: &CatalogState, def: &mut TableDef) -> Vec<SequenceDef> {
    let mut out: Vec<SequenceDef> = Vec::new();
    for c in def.columns.iter_mut() {
        if c.default.as_deref() != Some(SEQUENCE_DEFAULT) {
            continue;
        }
        let mut name =
            crate::index::choose_relation_name(state, &def.schema, &def.name, &c.name, "seq");
        let mut n = 1;
        while out.iter().any(|s| s.name == name) {
            name = crate::index::choose_relation_name(
                state,
                &def.schema,
                &def.name,
                &c.name,
                &format!("seq{n}"),
            );
            n += 1;
        }
        c.default = Some(format!("nextval('{}')", name.replace('\'', "''")));
        let mut seq = SequenceDef::new(def.oid + 1 + out.len() as u32, &def.schema, &name);
        seq.max = match c.ty {
            PgType::Int2 => i16::MAX as i64,
            PgType::Int4 => i32::MAX as i64,
            _ => i64::MAX,
        };
        seq.owned_by = Some((def.oid, c.name.clone()));
        out.push(seq);
    }
    out
}

type NewTable = (String, TableDef, Vec<crate::foreign_keys::ForeignKeySpec>);

fn table_def(ct: &CreateTable, oid: u32) -> Result<NewTable> {
    let (schema, name) = object_name(&ct.name)?;
    if ct.query.is_some() || ct.like.is_some() || ct.clone.is_some() {
        return Err(TemporaError::not_supported("CREATE TABLE AS / LIKE"));
    }
    let mut columns = Vec::new();
    // (constraint name, columns, primary)
    let mut keys: Vec<(Option<String>, Vec<String>, bool)> = Vec::new();
    let mut foreign_keys = Vec::new();
    for c in &ct.constraints {
        match c {
            TableConstraint::PrimaryKey(pk) => keys.push((
                pk.name.as_ref().map(ident_name),
                pk.columns
                    .iter()
                    .map(|c| c.column.expr.to_string())
                    .map(fold)
                    .collect(),
                true,
            )),
            TableConstraint::Unique(u) => keys.push((
                u.name.as_ref().map(ident_name),
                u.columns
                    .iter()
                    .map(|c| c.column.expr.to_string())
                    .map(fold)
                    .collect(),
                false,
            )),
            TableConstraint::ForeignKey(fk) => {
                foreign_keys.push(crate::foreign_keys::ForeignKeySpec::read(fk, None)?)
            }
            other => {
                return Err(TemporaError::not_supported(format!(
                    "table constraint {other}"
                )))
            }
        }
    }
    for (i, c) in ct.columns.iter().enumerate() {
        let col_name = ident_name(&c.name);
        if columns.iter().any(|x: &ColumnDef| x.name == col_name) {
            return Err(TemporaError::new(
                SqlState::DUPLICATE_COLUMN,
                format!("column \"{col_name}\" specified more than once"),
            ));
        }
        let type_name = c.data_type.to_string().to_lowercase();
        let serial = match type_name.as_str() {
            "serial" | "serial4" => Some(PgType::Int4),
            "bigserial" | "serial8" => Some(PgType::Int8),
            "smallserial" | "serial2" => Some(PgType::Int2),
            _ => None,
        };
        let ty = match &serial {
            Some(ty) => ty.clone(),
            None => pg_type(&type_name)?,
        };
        let mut def = ColumnDef::new(i as u32 + 1, col_name, ty);
        if serial.is_some() {
            def.not_null = true;
            def.default = Some(SEQUENCE_DEFAULT.into());
        }
        for opt in &c.options {
            match &opt.option {
                ColumnOption::Generated {
                    generation_expr: None,
                    ..
                } => {
                    if !matches!(def.ty, PgType::Int2 | PgType::Int4 | PgType::Int8) {
                        return Err(TemporaError::new(
                            SqlState::INVALID_PARAMETER_VALUE,
                            "identity column type must be smallint, integer, or bigint",
                        ));
                    }
                    def.not_null = true;
                    def.default = Some(SEQUENCE_DEFAULT.into());
                }
                ColumnOption::NotNull => def.not_null = true,
                ColumnOption::Null => def.not_null = false,
                ColumnOption::Default(e) => def.default = Some(e.to_string()),
                ColumnOption::PrimaryKey(pk) => keys.push((
                    pk.name.as_ref().map(ident_name),
                    vec![def.name.clone()],
                    true,
                )),
                ColumnOption::Unique(u) => keys.push((
                    u.name.as_ref().map(ident_name),
                    vec![def.name.clone()],
                    false,
                )),
                ColumnOption::ForeignKey(fk) => foreign_keys.push(
                    crate::foreign_keys::ForeignKeySpec::read(fk, Some(&def.name))?,
                ),
                other => {
                    return Err(TemporaError::not_supported(format!(
                        "column option {other}"
                    )))
                }
            }
        }
        columns.push(def);
    }
    let mut unique_keys: Vec<UniqueKey> = Vec::new();
    for (given, cols, primary) in keys {
        if primary && unique_keys.iter().any(|k| k.primary) {
            return Err(TemporaError::new(
                SqlState::INVALID_TABLE_DEFINITION,
                format!("multiple primary keys for table \"{name}\" are not allowed"),
            ));
        }
        for c in &cols {
            let Some(col) = columns.iter_mut().find(|x| &x.name == c) else {
                return Err(TemporaError::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!("column \"{c}\" named in key does not exist"),
                ));
            };
            if primary {
                col.not_null = true;
            }
        }
        let name = given.unwrap_or_else(|| {
            if primary {
                format!("{name}_pkey")
            } else {
                format!("{name}_{}_key", cols.join("_"))
            }
        });
        if unique_keys.iter().any(|k| k.columns == cols) {
            continue; // PostgreSQL keeps one index for the same columns
        }
        unique_keys.push(UniqueKey {
            name,
            columns: cols,
            primary,
            index: false,
        });
    }
    Ok((
        name.clone(),
        TableDef {
            oid,
            schema,
            name,
            columns,
            hypertable: None,
            chunks: Default::default(),
            files: vec![],
            unique_keys,
            compression: None,
            indexes: vec![],
            next_column_id: 0,
            comment: None,
            foreign_keys: vec![],
        },
        foreign_keys,
    ))
}

/// TRUNCATE inside a transaction block: a DELETE of every row of each
/// table, kept in the block as its DELETEs are.
async fn truncate_in_block(
    session: &SqlSession,
    state: &tempora_catalog::CatalogState,
    oids: &[u32],
) -> Result<()> {
    if oids.iter().any(|oid| {
        crate::foreign_keys::referencing(state, *oid, &[])
            .next()
            .is_some()
    }) {
        return Err(TemporaError::not_supported(
            "TRUNCATE of a table other tables reference inside a transaction block",
        ));
    }
    let _files = session.tx_catalog().capture_data();
    for oid in oids {
        let table = state
            .table_by_oid(*oid)
            .ok_or_else(|| TemporaError::internal("truncated table vanished"))?;
        let sql = format!("DELETE FROM {}", quoted_table(table));
        let stmt = crate::parse(&sql)?
            .pop()
            .ok_or_else(|| TemporaError::internal("DELETE did not parse"))?;
        crate::dml::RewritePlan::plan(session, &stmt)
            .await?
            .execute(session, None)
            .await?;
    }
    Ok(())
}

/// Whether `stmt` may run inside a transaction block: statements that only
/// change definitions, whose catalog changes COMMIT publishes together, and
/// TRUNCATE (as DELETEs). Role changes may not.
pub(crate) fn allowed_in_block(stmt: &Statement) -> bool {
    if crate::roles::is_role_statement(stmt) {
        return false;
    }
    match stmt {
        Statement::CreateTable(_)
        | Statement::CreateIndex(_)
        | Statement::CreateView(_)
        | Statement::CreateSchema { .. }
        | Statement::CreateExtension(_)
        | Statement::Comment { .. }
        | Statement::AlterTable(_)
        | Statement::CreateFunction(_)
        | Statement::DropFunction(_)
        | Statement::Truncate(_) => true,
        Statement::Drop { object_type, .. } => matches!(
            object_type,
            ObjectType::Table
                | ObjectType::View
                | ObjectType::MaterializedView
                | ObjectType::Index
                | ObjectType::Schema
                | ObjectType::Sequence
        ),
        _ => false,
    }
}

/// `DROP TABLE _timescaledb_internal._hyper_H_C_chunk`: drops the chunk
/// and its rows, as `drop_chunks` would, leaving the hypertable.
async fn drop_chunk_tables(
    session: &SqlSession,
    chunks: &[(String, String)],
    if_exists: bool,
    notices: &mut Vec<Notice>,
) -> Result<()> {
    session.reject_write_in_block("DROP TABLE of a chunk")?;
    let engine = session.engine();
    let snapshot = engine.catalog().snapshot();
    let mut by_table: Vec<(u32, Vec<u32>)> = Vec::new();
    for (schema, name) in chunks {
        match tempora_query::compression::chunk_named(&snapshot, &format!("{schema}.{name}")) {
            Ok((table, chunk)) => match by_table.iter_mut().find(|(oid, _)| *oid == table.oid) {
                Some((_, ids)) => ids.push(chunk.id),
                None => by_table.push((table.oid, vec![chunk.id])),
            },
            Err(_) if if_exists => notices.push(Notice::info(
                SqlState::SUCCESSFUL_COMPLETION,
                format!("table \"{name}\" does not exist, skipping"),
            )),
            Err(_) => {
                return Err(TemporaError::new(
                    SqlState::UNDEFINED_TABLE,
                    format!("table \"{name}\" does not exist"),
                ))
            }
        }
    }
    for (oid, ids) in by_table {
        engine.drop_chunks(oid, &ids).await?;
    }
    Ok(())
}

pub(crate) async fn execute(
    session: &mut SqlSession,
    stmt: &Statement,
) -> Result<(Outcome, Vec<Notice>)> {
    let catalog = session.engine().catalog().clone();
    match stmt {
        s if crate::roles::is_role_statement(s) => crate::roles::execute(session, s).await,
        Statement::CreateTable(ct) => {
            // Validate before taking the commit lock.
            let (name, probe, _) = table_def(ct, 0)?;
            let schema = probe.schema;
            let mut notices = vec![];
            let mut skipped = false;
            catalog
                .commit(|state| {
                    if !state.schema_exists(&schema) {
                        return Err(no_schema(&schema));
                    }
                    if state.relation_exists(&schema, &name) {
                        if ct.if_not_exists {
                            skipped = true;
                            return Ok(vec![]);
                        }
                        return Err(TemporaError::new(
                            SqlState::DUPLICATE_TABLE,
                            format!("relation \"{name}\" already exists"),
                        ));
                    }
                    let (_, mut def, foreign_keys) = table_def(ct, state.next_oid)?;
                    for spec in foreign_keys {
                        let fk = spec.resolve(state, &def)?;
                        def.foreign_keys.push(fk);
                    }
                    let sequences = with_sequences(state, &mut def);
                    Ok(std::iter::once(CatalogOp::CreateTable(def))
                        .chain(sequences.into_iter().map(CatalogOp::PutSequence))
                        .collect())
                })
                .await?;
            if skipped {
                notices.push(Notice::info(
                    SqlState::DUPLICATE_TABLE,
                    format!("relation \"{name}\" already exists, skipping"),
                ));
            }
            Ok((Outcome::Command("CREATE TABLE".into()), notices))
        }
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            cascade,
            ..
        } => {
            let mut notices = vec![];
            let mut dropped = vec![];
            let targets = names.iter().map(object_name).collect::<Result<Vec<_>>>()?;
            let (chunks, targets): (Vec<_>, Vec<_>) = targets
                .into_iter()
                .partition(|(schema, _)| schema == tempora_catalog::CHUNK_SCHEMA);
            // Chunks go first, each drop a commit of its own; the tables
            // named with them are dropped together after.
            let mut chunk_notices = vec![];
            if !chunks.is_empty() {
                drop_chunk_tables(session, &chunks, *if_exists, &mut chunk_notices).await?;
                if targets.is_empty() {
                    return Ok((Outcome::Command("DROP TABLE".into()), chunk_notices));
                }
            }
            catalog
                .commit(|state| {
                    notices.clear();
                    dropped.clear();
                    let mut tables: Vec<(u32, String, &str)> = vec![];
                    for (schema, name) in &targets {
                        match state.table(schema, name) {
                            Some(t) => {
                                if !tables.iter().any(|(oid, _, _)| *oid == t.oid) {
                                    tables.push((t.oid, t.name.clone(), "table"));
                                    dropped.push((
                                        t.oid,
                                        t.all_files().map(|f| f.path.clone()).collect(),
                                    ));
                                }
                            }
                            None if state.view(schema, name).is_some() => {
                                let materialized = state
                                    .view(schema, name)
                                    .is_some_and(|v| v.materialized.is_some());
                                return Err(TemporaError::new(
                                    SqlState::WRONG_OBJECT_TYPE,
                                    format!("\"{name}\" is not a table"),
                                )
                                .with_hint(if materialized {
                                    "Use DROP MATERIALIZED VIEW to remove a materialized view."
                                } else {
                                    "Use DROP VIEW to remove a view."
                                }));
                            }
                            None if *if_exists => notices.push(Notice::info(
                                SqlState::SUCCESSFUL_COMPLETION,
                                format!("table \"{name}\" does not exist, skipping"),
                            )),
                            None => {
                                return Err(TemporaError::new(
                                    SqlState::UNDEFINED_TABLE,
                                    format!("table \"{name}\" does not exist"),
                                ))
                            }
                        }
                    }
                    let mut cascaded = Vec::new();
                    let views =
                        crate::views::dependent_views(state, &tables, *cascade, &mut cascaded)?;
                    let oids: Vec<u32> = tables.iter().map(|(oid, _, _)| *oid).collect();
                    let mut ops = Vec::new();
                    let mut unlinked: Vec<TableDef> = Vec::new();
                    for (oid, name, _) in &tables {
                        let mut dependents: Vec<_> =
                            crate::foreign_keys::referencing(state, *oid, &oids).collect();
                        dependents.sort_by(|a, b| a.1.name.cmp(&b.1.name));
                        if !*cascade && !dependents.is_empty() {
                            let detail: Vec<String> = dependents
                                .iter()
                                .map(|(t, fk)| {
                                    format!(
                                        "constraint {} on table {} depends on table {name}",
                                        fk.name, t.name
                                    )
                                })
                                .collect();
                            return Err(TemporaError::new(
                                SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                                format!(
                                    "cannot drop table {name} because other objects depend on it"
                                ),
                            )
                            .with_detail(detail.join("\n"))
                            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                        }
                        for (t, fk) in dependents {
                            cascaded.push(format!("constraint {} on table {}", fk.name, t.name));
                            if !unlinked.iter().any(|u| u.oid == t.oid) {
                                unlinked.push(t.definition_only());
                            }
                            if let Some(u) = unlinked.iter_mut().find(|u| u.oid == t.oid) {
                                u.foreign_keys.retain(|f| f.ref_oid != *oid);
                            }
                        }
                    }
                    ops.extend(
                        unlinked
                            .into_iter()
                            .map(|t| CatalogOp::AlterTable(Box::new(t))),
                    );
                    for oid in views {
                        ops.extend(crate::views::drop_view_ops(state, oid, &mut dropped));
                    }
                    notices.extend(Notice::cascade(&cascaded));
                    Ok(ops
                        .into_iter()
                        .chain(
                            tables
                                .iter()
                                .map(|(oid, _, _)| CatalogOp::DropTable { oid: *oid }),
                        )
                        .collect())
                })
                .await?;
            session.drop_tables(dropped);
            chunk_notices.extend(notices);
            Ok((Outcome::Command("DROP TABLE".into()), chunk_notices))
        }
        Statement::CreateIndex(ci) => crate::index::create_index(session, ci).await,
        Statement::Comment {
            object_type,
            object_name,
            comment,
            ..
        } => {
            crate::comments::comment_on(session, object_type, object_name, comment.as_deref()).await
        }
        Statement::CreateView(cv) => crate::views::create_view(session, cv).await,
        Statement::CreateFunction(cf) => crate::functions::create_function(session, cf).await,
        Statement::DropFunction(df) => crate::functions::drop_functions(session, df).await,
        Statement::CreateSchema {
            schema_name,
            if_not_exists,
            ..
        } => crate::schemas::create_schema(session, schema_name, *if_not_exists).await,
        Statement::Drop {
            object_type: ObjectType::Schema,
            if_exists,
            names,
            cascade,
            ..
        } => crate::schemas::drop_schemas(session, names, *if_exists, *cascade).await,
        Statement::Drop {
            object_type: ObjectType::View,
            if_exists,
            names,
            cascade,
            ..
        } => crate::views::drop_views(session, names, *if_exists, *cascade, false).await,
        Statement::AlterTable(at) => crate::alter::alter_table(session, at).await,
        Statement::Truncate(t) => {
            if matches!(
                t.identity,
                Some(datafusion::sql::sqlparser::ast::TruncateIdentityOption::Restart)
            ) {
                return Err(TemporaError::not_supported("TRUNCATE ... RESTART IDENTITY"));
            }
            let state = catalog.snapshot();
            let mut oids = Vec::new();
            // Raw tables of the continuous aggregates truncated: every
            // bucket is to be made again at the next refresh.
            let mut rematerialize = Vec::new();
            for target in &t.table_names {
                let (schema, name) = object_name(&target.name)?;
                match state.table(&schema, &name) {
                    Some(def) if oids.contains(&def.oid) => {}
                    Some(def) => oids.push(def.oid),
                    None if let Some(c) = state
                        .view(&schema, &name)
                        .and_then(|v| v.continuous.as_ref()) =>
                    {
                        // TimescaleDB empties the materialization.
                        if !oids.contains(&c.mat_oid) {
                            oids.push(c.mat_oid);
                            rematerialize.push(c.raw_oid);
                        }
                    }
                    None if state.view(&schema, &name).is_some() => {
                        return Err(TemporaError::new(
                            SqlState::WRONG_OBJECT_TYPE,
                            format!("\"{name}\" is not a table"),
                        ))
                    }
                    None => {
                        return Err(TemporaError::new(
                            SqlState::UNDEFINED_TABLE,
                            format!("relation \"{name}\" does not exist"),
                        ))
                    }
                }
            }
            // A table another references goes only with the referencing
            // ones (CASCADE adds them).
            let cascade = matches!(
                t.cascade,
                Some(datafusion::sql::sqlparser::ast::CascadeOption::Cascade)
            );
            let mut notices = vec![];
            let mut i = 0;
            while i < oids.len() {
                let oid = oids[i];
                let listed = oids.clone();
                for (r, _) in crate::foreign_keys::referencing(&state, oid, &listed) {
                    if oids.contains(&r.oid) {
                        continue;
                    }
                    let name = state.table_by_oid(oid).map_or("", |d| d.name.as_str());
                    if !cascade {
                        return Err(TemporaError::new(
                            SqlState::FEATURE_NOT_SUPPORTED,
                            "cannot truncate a table referenced in a foreign key constraint",
                        )
                        .with_detail(format!("Table \"{}\" references \"{name}\".", r.name))
                        .with_hint(format!(
                            "Truncate table \"{}\" at the same time, or use TRUNCATE ... CASCADE.",
                            r.name
                        )));
                    }
                    notices.push(Notice::info(
                        SqlState::SUCCESSFUL_COMPLETION,
                        format!("truncate cascades to table \"{}\"", r.name),
                    ));
                    oids.push(r.oid);
                }
                i += 1;
            }
            if session.in_block() {
                if !rematerialize.is_empty() {
                    return Err(TemporaError::not_supported(
                        "TRUNCATE of a continuous aggregate inside a transaction block",
                    ));
                }
                truncate_in_block(session, &state, &oids).await?;
                return Ok((Outcome::Command("TRUNCATE TABLE".into()), notices));
            }
            session.engine().truncate(&oids, &rematerialize).await?;
            Ok((Outcome::Command("TRUNCATE TABLE".into()), notices))
        }
        Statement::Drop {
            object_type: ObjectType::MaterializedView,
            if_exists,
            names,
            cascade,
            ..
        } => crate::views::drop_views(session, names, *if_exists, *cascade, true).await,
        Statement::Drop {
            object_type: ObjectType::Index,
            if_exists,
            names,
            ..
        } => crate::index::drop_index(session, names, *if_exists).await,
        Statement::Drop {
            object_type: ObjectType::Sequence,
            if_exists,
            names,
            cascade,
            ..
        } => crate::sequences::drop_sequences(session, names, *if_exists, *cascade).await,
        Statement::Drop { object_type, .. } => {
            Err(TemporaError::not_supported(format!("DROP {object_type}")))
        }
        Statement::CreateExtension(ext) => {
            let name = ext.name.value.to_lowercase();
            if tempora_query::session::extension_version(&name).is_none() {
                return Err(TemporaError::new(
                    SqlState::UNDEFINED_FILE,
                    format!("extension \"{name}\" is not available"),
                )
                .with_hint("Tempora provides the timescaledb extension only."));
            }
            let mut notices = vec![];
            let if_not_exists = ext.if_not_exists;
            catalog
                .commit(|state| {
                    if state.extensions.contains(&name) {
                        if if_not_exists {
                            notices.push(Notice::info(
                                SqlState::DUPLICATE_OBJECT,
                                format!("extension \"{name}\" already exists, skipping"),
                            ));
                            return Ok(vec![]);
                        }
                        return Err(TemporaError::new(
                            SqlState::DUPLICATE_OBJECT,
                            format!("extension \"{name}\" already exists"),
                        ));
                    }
                    Ok(vec![CatalogOp::CreateExtension { name: name.clone() }])
                })
                .await?;
            Ok((Outcome::Command("CREATE EXTENSION".into()), notices))
        }
        other => Err(crate::unsupported_statement(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!(pg_type("TIMESTAMPTZ").unwrap(), PgType::Timestamptz);
        assert_eq!(
            pg_type("timestamp with time zone").unwrap(),
            PgType::Timestamptz
        );
        assert_eq!(pg_type("DOUBLE PRECISION").unwrap(), PgType::Float8);
        assert_eq!(pg_type("varchar(20)").unwrap(), PgType::Varchar(Some(20)));
        assert_eq!(
            pg_type("NUMERIC(10,2)").unwrap(),
            PgType::Numeric {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            pg_type("nope").unwrap_err().code,
            SqlState::UNDEFINED_OBJECT
        );
    }
}
