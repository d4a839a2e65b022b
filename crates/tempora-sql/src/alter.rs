//! `ALTER TABLE`: columns added, dropped, renamed, retyped (widenings),
//! defaults and NOT NULL, constraints, the table renamed.
//!
//! No file is rewritten: every change is one catalog commit
//! (`Engine::commit_flushed`), and rows stored before it are read through
//! their column ids (`tempora_storage::columns`). TimescaleDB's settings
//! (`ALTER TABLE t SET (timescaledb.compress, ...)`) are read elsewhere
//! (compression.rs).

use datafusion::sql::sqlparser::ast::{
    AlterColumnOperation, AlterTable, AlterTableOperation, ColumnOption, Expr as SqlExpr, Owner,
    RenameTableNameKind, TableConstraint,
};
use tempora_catalog::{CatalogOp, CatalogState, ColumnDef, PgType, TableDef, UniqueKey};
use tempora_common::{Result, SqlState, TemporaError};

use crate::ddl::{ident_name, object_name, pg_type};
use crate::{Notice, Outcome, SqlSession};

/// One operation, with what had to be computed before the commit.
enum Op {
    AddColumn {
        if_not_exists: bool,
        column: ColumnDef,
    },
    DropColumn {
        names: Vec<String>,
        if_exists: bool,
    },
    RenameColumn {
        old: String,
        new: String,
    },
    RenameTable(String),
    SetType {
        column: String,
        ty: PgType,
    },
    /// A type change the stored values must be converted for: every file
    /// of the table is written again (`expr`: the USING expression, SQL).
    RewriteType {
        column: String,
        ty: PgType,
        expr: String,
    },
    SetDefault {
        column: String,
        default: Option<String>,
    },
    SetNotNull(String),
    DropNotNull(String),
    AddKey(UniqueKey),
    AddForeignKey(crate::foreign_keys::ForeignKeySpec),
    DropConstraint {
        name: String,
        if_exists: bool,
    },
}

fn no_column(column: &str, table: &str) -> TemporaError {
    TemporaError::new(
        SqlState::UNDEFINED_COLUMN,
        format!("column \"{column}\" of relation \"{table}\" does not exist"),
    )
}

fn column_exists(column: &str, table: &str) -> TemporaError {
    TemporaError::new(
        SqlState::DUPLICATE_COLUMN,
        format!("column \"{column}\" of relation \"{table}\" already exists"),
    )
}

fn contains_nulls(column: &str, table: &str) -> TemporaError {
    TemporaError::new(
        SqlState::NOT_NULL_VIOLATION,
        format!("column \"{column}\" of relation \"{table}\" contains null values"),
    )
}

/// Whether values of `from` read as `to` by a cast that cannot fail nor
/// change them (so stored files can be read as they are).
fn widens(from: &PgType, to: &PgType) -> bool {
    use PgType::*;
    let int_digits = |t: &PgType| match t {
        Int2 => Some(5),
        Int4 => Some(10),
        Int8 => Some(19),
        _ => None,
    };
    match (from, to) {
        (a, b) if a == b => true,
        (Int2, Int4 | Int8) | (Int4, Int8) | (Float4, Float8) => true,
        (Int2 | Int4, Float8) => true,
        (Int2 | Int4 | Int8, Numeric { precision, scale }) => {
            int_digits(from).is_some_and(|d| (*precision as i32 - *scale as i32) >= d)
        }
        (
            Numeric {
                precision: p1,
                scale: s1,
            },
            Numeric {
                precision: p2,
                scale: s2,
            },
        ) => s2 >= s1 && (*p2 as i32 - *s2 as i32) >= (*p1 as i32 - *s1 as i32),
        (Varchar(_) | Text, Text | Varchar(None)) => true,
        (Varchar(Some(n)), Varchar(Some(m))) => m >= n,
        _ => false,
    }
}

/// Whether PostgreSQL converts `from` to `to` in ALTER COLUMN TYPE without
/// a USING clause (an implicit or assignment cast).
fn assignment_cast(from: &PgType, to: &PgType) -> bool {
    use PgType::*;
    let numeric = |t: &PgType| matches!(t, Int2 | Int4 | Int8 | Float4 | Float8 | Numeric { .. });
    let temporal = |t: &PgType| matches!(t, Timestamptz | Timestamp | Date);
    from == to
        || (numeric(from) && numeric(to))
        || matches!(to, Text | Varchar(_))
        || (temporal(from) && temporal(to))
}

/// Whether a value hashes alike as `from` and as `to` (PostgreSQL's
/// integer hashes agree across widths, text and varchar share one), so that
/// a space dimension's column may change between them and keep each row's
/// partition.
fn same_partition_hash(from: &PgType, to: &PgType) -> bool {
    use PgType::*;
    let int = |t: &PgType| matches!(t, Int2 | Int4 | Int8);
    let text = |t: &PgType| matches!(t, Text | Varchar(_));
    from == to || (int(from) && int(to)) || (text(from) && text(to))
}

fn space_type_change() -> TemporaError {
    TemporaError::not_supported(
        "changing the type of a hypertable's space partitioning column to one that hashes differently",
    )
}

/// TimescaleDB's refusals of a type change that rewrites stored values.
fn check_type_change(def: &TableDef, column: &str, time_column: Option<&str>) -> Result<()> {
    if time_column == Some(column) {
        return Err(TemporaError::not_supported(
            "changing the type of a hypertable's time column",
        ));
    }
    if def.compression.is_some() {
        return Err(TemporaError::not_supported(
            "an ALTER COLUMN TYPE that converts stored values on a hypertable with compression enabled",
        ));
    }
    Ok(())
}

/// Columns a key constraint names, folded.
fn key_columns(columns: &[datafusion::sql::sqlparser::ast::IndexColumn]) -> Vec<String> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            SqlExpr::Identifier(i) => ident_name(i),
            other => other.to_string().to_lowercase(),
        })
        .collect()
}

/// Reads an `ALTER TABLE` into [`Op`]s, evaluating defaults and checking
/// stored rows where the change depends on them.
async fn plan_ops(
    session: &SqlSession,
    table: &TableDef,
    operations: &[AlterTableOperation],
) -> Result<Vec<Op>> {
    let engine = session.engine().clone();
    let mut ops = Vec::new();
    for op in operations {
        ops.push(match op {
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                ..
            } => {
                let name = ident_name(&column_def.name);
                let ty = pg_type(&column_def.data_type.to_string())?;
                // Its id is given at the commit.
                let mut column = ColumnDef::new(0, name.clone(), ty.clone());
                for o in &column_def.options {
                    match &o.option {
                        ColumnOption::NotNull => column.not_null = true,
                        ColumnOption::Null => column.not_null = false,
                        ColumnOption::Default(e) => column.default = Some(e.to_string()),
                        other => {
                            return Err(TemporaError::not_supported(format!(
                                "ALTER TABLE ADD COLUMN with {other}"
                            )))
                        }
                    }
                }
                let exists = table.column(&name).is_some();
                if !exists {
                    let has_rows = engine.has_rows(table);
                    if let Some(d) = &column.default {
                        if crate::ddl::is_volatile(d) && has_rows {
                            return Err(TemporaError::not_supported(format!(
                                "ADD COLUMN with the volatile DEFAULT {d} on a table with rows"
                            )));
                        }
                        // Rows stored before read the default as of now
                        // (PostgreSQL's "fast default").
                        let value = session
                            .eval_sql(&format!("CAST({d} AS {})", ty.sql_name()))
                            .await?
                            .cast_to(&ty.arrow_type())
                            .map_err(TemporaError::from_datafusion)?;
                        if !value.is_null() {
                            column.missing =
                                Some(tempora_storage::columns::encode_missing(&value)?);
                        }
                    }
                    if column.not_null && column.missing.is_none() && has_rows {
                        return Err(contains_nulls(&name, &table.name));
                    }
                }
                Op::AddColumn {
                    if_not_exists: *if_not_exists,
                    column,
                }
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => Op::DropColumn {
                names: column_names.iter().map(ident_name).collect(),
                if_exists: *if_exists,
            },
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => Op::RenameColumn {
                old: ident_name(old_column_name),
                new: ident_name(new_column_name),
            },
            AlterTableOperation::RenameTable { table_name } => {
                let (RenameTableNameKind::To(name) | RenameTableNameKind::As(name)) = table_name;
                Op::RenameTable(object_name(name)?.1)
            }
            AlterTableOperation::AlterColumn { column_name, op } => {
                let column = ident_name(column_name);
                match op {
                    AlterColumnOperation::SetNotNull => {
                        if table.column(&column).is_some()
                            && column_has_nulls(session, table, &column).await?
                        {
                            return Err(contains_nulls(&column, &table.name));
                        }
                        Op::SetNotNull(column)
                    }
                    AlterColumnOperation::DropNotNull => Op::DropNotNull(column),
                    AlterColumnOperation::SetDefault { value } => {
                        // Checked to plan now, not at the next INSERT.
                        if let Some(c) = table.column(&column) {
                            session
                                .plan_sql(&format!("SELECT CAST({value} AS {})", c.ty.sql_name()))
                                .await?;
                        }
                        Op::SetDefault {
                            column,
                            default: Some(value.to_string()),
                        }
                    }
                    AlterColumnOperation::DropDefault => Op::SetDefault {
                        column,
                        default: None,
                    },
                    AlterColumnOperation::SetDataType {
                        data_type, using, ..
                    } => {
                        let plain_using = match using {
                            None => true,
                            Some(SqlExpr::Identifier(i)) => ident_name(i) == column,
                            Some(_) => false,
                        };
                        let ty = pg_type(&data_type.to_string())?;
                        let from = table.column(&column).map(|c| c.ty.clone());
                        match from {
                            Some(from) if !(plain_using && widens(&from, &ty)) => {
                                let expr = match using {
                                    Some(e) if !plain_using => e.to_string(),
                                    _ if assignment_cast(&from, &ty) => {
                                        crate::ddl::quote_ident(&column)
                                    }
                                    _ => {
                                        return Err(TemporaError::new(
                                            SqlState::DATATYPE_MISMATCH,
                                            format!(
                                                "column \"{column}\" cannot be cast automatically to type {}",
                                                ty.sql_name()
                                            ),
                                        )
                                        .with_hint(format!(
                                            "You might need to specify \"USING {column}::{}\".",
                                            ty.sql_name()
                                        )))
                                    }
                                };
                                Op::RewriteType { column, ty, expr }
                            }
                            _ => Op::SetType { column, ty },
                        }
                    }
                    other => {
                        return Err(TemporaError::not_supported(format!("ALTER COLUMN {other}")))
                    }
                }
            }
            AlterTableOperation::AddConstraint { constraint, .. } => {
                let (name, columns, primary) = match constraint {
                    TableConstraint::PrimaryKey(pk) => (
                        pk.name.as_ref().map(ident_name),
                        key_columns(&pk.columns),
                        true,
                    ),
                    TableConstraint::Unique(u) => (
                        u.name.as_ref().map(ident_name),
                        key_columns(&u.columns),
                        false,
                    ),
                    TableConstraint::ForeignKey(fk) => {
                        let spec = crate::foreign_keys::ForeignKeySpec::read(fk, None)?;
                        let state = engine.catalog().snapshot();
                        let resolved = spec.resolve(&state, table)?;
                        crate::foreign_keys::check_existing_rows(session, &state, table, &resolved)
                            .await?;
                        ops.push(Op::AddForeignKey(spec));
                        continue;
                    }
                    other => {
                        return Err(TemporaError::not_supported(format!(
                            "ALTER TABLE ADD {other}"
                        )))
                    }
                };
                for c in &columns {
                    if table.column(c).is_none() {
                        return Err(TemporaError::new(
                            SqlState::UNDEFINED_COLUMN,
                            format!("column \"{c}\" named in key does not exist"),
                        ));
                    }
                }
                if let Some(h) = &table.hypertable {
                    crate::hypertable::check_unique_columns(h, |c| columns.iter().any(|k| k == c))?;
                }
                let name = name.unwrap_or_else(|| {
                    if primary {
                        format!("{}_pkey", table.name)
                    } else {
                        format!("{}_{}_key", table.name, columns.join("_"))
                    }
                });
                let key = UniqueKey {
                    name,
                    columns,
                    primary,
                    index: false,
                };
                if primary {
                    for c in &key.columns {
                        if column_has_nulls(session, table, c).await? {
                            return Err(contains_nulls(c, &table.name));
                        }
                    }
                }
                crate::index::check_unique(session, table, &key).await?;
                Op::AddKey(key)
            }
            AlterTableOperation::DropConstraint {
                if_exists, name, ..
            } => Op::DropConstraint {
                name: ident_name(name),
                if_exists: *if_exists,
            },
            AlterTableOperation::OwnerTo { new_owner } => {
                // Every table belongs to the one role Tempora has.
                let owner = match new_owner {
                    Owner::Ident(i) => ident_name(i),
                    _ => "postgres".into(),
                };
                if owner != "postgres" {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("role \"{owner}\" does not exist"),
                    ));
                }
                continue;
            }
            other => {
                return Err(TemporaError::not_supported(format!("ALTER TABLE {other}")));
            }
        });
    }
    Ok(ops)
}

async fn column_has_nulls(session: &SqlSession, table: &TableDef, column: &str) -> Result<bool> {
    let sql = format!(
        "SELECT count(*) AS n FROM {} WHERE {} IS NULL",
        crate::ddl::quoted_table(table),
        crate::ddl::quote_ident(column)
    );
    let n = session.eval_sql(&format!("({sql})")).await?;
    Ok(!matches!(
        n,
        datafusion::common::ScalarValue::Int64(Some(0) | None)
    ))
}

/// The table's definition after `ops`, with the notices they raise.
fn apply(
    state: &CatalogState,
    mut def: TableDef,
    ops: &[Op],
    notices: &mut Vec<Notice>,
) -> Result<TableDef> {
    let table = def.name.clone();
    let find = |def: &TableDef, c: &str| -> Result<usize> {
        def.column_index(c).ok_or_else(|| no_column(c, &table))
    };
    let time_column = def.hypertable.as_ref().map(|h| h.time_column.clone());
    let is_space_column = |def: &TableDef, c: &str| {
        def.hypertable
            .as_ref()
            .is_some_and(|h| h.space_dimensions.iter().any(|(d, _)| d == c))
    };
    for op in ops {
        match op {
            Op::AddColumn {
                if_not_exists,
                column,
            } => {
                if def.column(&column.name).is_some() {
                    if *if_not_exists {
                        notices.push(Notice::info(
                            SqlState::DUPLICATE_COLUMN,
                            format!(
                                "column \"{}\" of relation \"{table}\" already exists, skipping",
                                column.name
                            ),
                        ));
                        continue;
                    }
                    return Err(column_exists(&column.name, &table));
                }
                let mut column = column.clone();
                column.id = def.next_column_id();
                def.next_column_id = column.id + 1;
                def.columns.push(column);
            }
            Op::DropColumn { names, if_exists } => {
                for name in names {
                    let Some(i) = def.column_index(name) else {
                        if *if_exists {
                            notices.push(Notice::info(SqlState::SUCCESSFUL_COMPLETION, format!(
                                    "column \"{name}\" of relation \"{table}\" does not exist, skipping"
                                )));
                            continue;
                        }
                        return Err(no_column(name, &table));
                    };
                    if time_column.as_deref() == Some(name) || is_space_column(&def, name) {
                        return Err(TemporaError::new(
                            SqlState::INVALID_TABLE_DEFINITION,
                            "cannot drop column named in partition key",
                        )
                        .with_detail(
                            "Cannot drop column that is a hypertable partitioning (space or time) dimension.",
                        ));
                    }
                    if let Some(c) = &def.compression {
                        if c.segmentby.contains(name) || c.orderby.iter().any(|o| &o.column == name)
                        {
                            return Err(TemporaError::new(
                                SqlState::FEATURE_NOT_SUPPORTED,
                                "cannot drop orderby or segmentby column from a hypertable with compression enabled",
                            ));
                        }
                    }
                    def.next_column_id = def.next_column_id();
                    def.columns.remove(i);
                    // Indexes and constraints on the column go with it,
                    // unless another table's foreign key needs them.
                    let oid = def.oid;
                    if let Some((t, fk)) = crate::foreign_keys::referencing(state, oid, &[oid])
                        .find(|(_, fk)| fk.ref_columns.contains(name))
                    {
                        return Err(TemporaError::new(
                            SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                            format!(
                                "cannot drop column {name} of table {table} because other objects depend on it"
                            ),
                        )
                        .with_detail(format!("constraint {} on table {} depends on column {name} of table {table}", fk.name, t.name))
                        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                    }
                    def.unique_keys.retain(|k| !k.columns.contains(name));
                    def.foreign_keys.retain(|fk| {
                        let names_it = fk.columns.contains(name)
                            || (fk.ref_oid == oid && fk.ref_columns.contains(name));
                        !names_it
                    });
                    def.indexes.retain(|x| {
                        !x.columns.iter().any(|c| !c.expression && &c.column == name)
                            && !x.include.contains(name)
                    });
                }
            }
            Op::RenameColumn { old, new } => {
                let i = def
                    .column_index(old)
                    .ok_or_else(|| TemporaError::undefined_column(old))?;
                if def.column(new).is_some() {
                    return Err(column_exists(new, &table));
                }
                def.columns[i].name = new.clone();
                let rename = |c: &mut String| {
                    if c == old {
                        *c = new.clone();
                    }
                };
                if let Some(h) = def.hypertable.as_mut() {
                    rename(&mut h.time_column);
                    h.space_dimensions.iter_mut().for_each(|(c, _)| rename(c));
                }
                for k in &mut def.unique_keys {
                    k.columns.iter_mut().for_each(rename);
                }
                let oid = def.oid;
                for fk in &mut def.foreign_keys {
                    fk.columns.iter_mut().for_each(rename);
                    if fk.ref_oid == oid {
                        fk.ref_columns.iter_mut().for_each(rename);
                    }
                }
                for x in &mut def.indexes {
                    x.columns
                        .iter_mut()
                        .filter(|c| !c.expression)
                        .for_each(|c| rename(&mut c.column));
                    x.include.iter_mut().for_each(rename);
                }
                if let Some(c) = def.compression.as_mut() {
                    c.segmentby.iter_mut().for_each(rename);
                    c.orderby.iter_mut().for_each(|o| rename(&mut o.column));
                }
            }
            Op::RenameTable(name) => {
                if state.relation_exists(&def.schema, name) && *name != def.name {
                    return Err(TemporaError::new(
                        SqlState::DUPLICATE_TABLE,
                        format!("relation \"{name}\" already exists"),
                    ));
                }
                def.name = name.clone();
            }
            Op::SetType { column, ty } => {
                let i = find(&def, column)?;
                let from = def.columns[i].ty.clone();
                if time_column.as_deref() == Some(column.as_str()) && &from != ty {
                    return Err(TemporaError::not_supported(
                        "changing the type of a hypertable's time column",
                    ));
                }
                if is_space_column(&def, column) && !same_partition_hash(&from, ty) {
                    return Err(space_type_change());
                }
                if !widens(&from, ty) {
                    return Err(TemporaError::not_supported(format!(
                        "ALTER COLUMN TYPE from {} to {} (it would rewrite the table's files)",
                        from.sql_name(),
                        ty.sql_name()
                    )));
                }
                def.columns[i].ty = ty.clone();
                if let Some(m) = &def.columns[i].missing {
                    let probe = ColumnDef {
                        missing: Some(m.clone()),
                        ty: from,
                        ..def.columns[i].clone()
                    };
                    let value = tempora_storage::columns::missing_value(&probe)?
                        .cast_to(&ty.arrow_type())
                        .map_err(TemporaError::from_datafusion)?;
                    def.columns[i].missing =
                        Some(tempora_storage::columns::encode_missing(&value)?);
                }
            }
            Op::SetDefault { column, default } => {
                let i = find(&def, column)?;
                def.columns[i].default = default.clone();
            }
            Op::RewriteType { column, ty, .. } => {
                let i = find(&def, column)?;
                check_type_change(&def, column, time_column.as_deref())?;
                if is_space_column(&def, column) && !same_partition_hash(&def.columns[i].ty, ty) {
                    return Err(space_type_change());
                }
                def.columns[i].ty = ty.clone();
                // Every file is written again with the column's values.
                def.columns[i].missing = None;
            }
            Op::SetNotNull(column) => {
                let i = find(&def, column)?;
                def.columns[i].not_null = true;
            }
            Op::DropNotNull(column) => {
                let i = find(&def, column)?;
                if time_column.as_deref() == Some(column.as_str()) {
                    return Err(TemporaError::new(
                        SqlState::TS_OPERATION_NOT_SUPPORTED,
                        "cannot drop not-null constraint from a time-partitioned column",
                    ));
                }
                if def
                    .unique_keys
                    .iter()
                    .any(|k| k.primary && k.columns.contains(column))
                {
                    return Err(TemporaError::new(
                        SqlState::INVALID_TABLE_DEFINITION,
                        format!("column \"{column}\" is in a primary key"),
                    ));
                }
                def.columns[i].not_null = false;
            }
            Op::AddKey(key) => {
                if key.primary && def.unique_keys.iter().any(|k| k.primary) {
                    return Err(TemporaError::new(
                        SqlState::INVALID_TABLE_DEFINITION,
                        format!("multiple primary keys for table \"{table}\" are not allowed"),
                    ));
                }
                if state.relation_exists(&def.schema, &key.name) || def.has_index(&key.name) {
                    return Err(TemporaError::new(
                        SqlState::DUPLICATE_TABLE,
                        format!("relation \"{}\" already exists", key.name),
                    ));
                }
                if key.primary {
                    for c in &key.columns {
                        let i = find(&def, c)?;
                        def.columns[i].not_null = true;
                    }
                }
                def.unique_keys.push(key.clone());
            }
            Op::AddForeignKey(spec) => {
                let fk = spec.resolve(state, &def)?;
                if def.foreign_keys.iter().any(|f| f.name == fk.name)
                    || def.unique_keys.iter().any(|k| k.name == fk.name)
                {
                    return Err(TemporaError::new(
                        SqlState::DUPLICATE_OBJECT,
                        format!(
                            "constraint \"{}\" for relation \"{table}\" already exists",
                            fk.name
                        ),
                    ));
                }
                def.foreign_keys.push(fk);
            }
            Op::DropConstraint { name, if_exists } => {
                if let Some(i) = def.foreign_keys.iter().position(|f| &f.name == name) {
                    def.foreign_keys.remove(i);
                    continue;
                }
                match def
                    .unique_keys
                    .iter()
                    .position(|k| &k.name == name && !k.index)
                {
                    Some(i) => {
                        let key = &def.unique_keys[i];
                        let oid = def.oid;
                        if let Some((t, fk)) = crate::foreign_keys::referencing(state, oid, &[oid])
                            .find(|(_, fk)| {
                                let mut a = fk.ref_columns.clone();
                                let mut b = key.columns.clone();
                                a.sort();
                                b.sort();
                                a == b
                            })
                        {
                            return Err(TemporaError::new(
                                SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                                format!(
                                    "cannot drop constraint {name} on table {table} because other objects depend on it"
                                ),
                            )
                            .with_detail(format!(
                                "constraint {} on table {} depends on index {name}",
                                fk.name, t.name
                            ))
                            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                        }
                        def.unique_keys.remove(i);
                    }
                    None if *if_exists => notices.push(Notice::info(
                        SqlState::SUCCESSFUL_COMPLETION,
                        format!(
                            "constraint \"{name}\" of relation \"{table}\" does not exist, skipping"
                        ),
                    )),
                    None => {
                        return Err(TemporaError::new(
                            SqlState::UNDEFINED_OBJECT,
                            format!("constraint \"{name}\" of relation \"{table}\" does not exist"),
                        ))
                    }
                }
            }
        }
    }
    def.chunks.clear();
    def.files.clear();
    Ok(def)
}

pub(crate) async fn alter_table(
    session: &SqlSession,
    at: &AlterTable,
) -> Result<(Outcome, Vec<Notice>)> {
    let (schema, name) = object_name(&at.name)?;
    let engine = session.engine().clone();
    let done = || Outcome::Command("ALTER TABLE".into());
    let Some(table) = engine.catalog().snapshot().table(&schema, &name).cloned() else {
        if at.if_exists {
            return Ok((
                done(),
                vec![Notice::info(
                    SqlState::SUCCESSFUL_COMPLETION,
                    format!("relation \"{name}\" does not exist, skipping"),
                )],
            ));
        }
        return Err(TemporaError::new(
            SqlState::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        ));
    };
    let ops = plan_ops(session, &table, &at.operations).await?;
    if ops.is_empty() {
        return Ok((done(), vec![]));
    }
    if let Some(Op::RewriteType { column, expr, .. }) =
        ops.iter().find(|o| matches!(o, Op::RewriteType { .. }))
    {
        if ops.len() > 1 {
            return Err(TemporaError::not_supported(
                "an ALTER COLUMN TYPE that converts stored values together with other changes in one ALTER TABLE",
            ));
        }
        if session.in_block() {
            return Err(TemporaError::not_supported(
                "an ALTER COLUMN TYPE that converts stored values inside a transaction block",
            ));
        }
        let state = engine.catalog().snapshot();
        let new_def = apply(&state, table.clone(), &ops, &mut Vec::new())?;
        crate::rewrite::rewrite_column(session, &table, new_def, column, expr).await?;
        return Ok((done(), vec![]));
    }
    let mut notices = Vec::new();
    engine
        .commit_flushed(&[table.oid], |state| {
            notices.clear();
            let current = state
                .table_by_oid(table.oid)
                .ok_or_else(|| TemporaError::undefined_table(&name))?;
            let def = apply(state, current.clone(), &ops, &mut notices)?;
            let before = current.definition_only();
            if def == before {
                return Ok(vec![]);
            }
            // Other tables' foreign keys follow renamed columns.
            let mut others = Vec::new();
            for (t, _) in crate::foreign_keys::referencing(state, table.oid, &[table.oid]) {
                if others.iter().any(|o: &TableDef| o.oid == t.oid) {
                    continue;
                }
                let mut other = t.definition_only();
                for fk in other
                    .foreign_keys
                    .iter_mut()
                    .filter(|f| f.ref_oid == table.oid)
                {
                    for c in fk.ref_columns.iter_mut() {
                        if let Some(i) = before.column_index(c) {
                            if let Some(id) = before.columns.get(i).map(|x| x.id) {
                                if let Some(now) = def.columns.iter().find(|x| x.id == id) {
                                    *c = now.name.clone();
                                }
                            }
                        }
                    }
                }
                if other.foreign_keys != t.foreign_keys {
                    others.push(other);
                }
            }
            Ok(std::iter::once(CatalogOp::AlterTable(Box::new(def)))
                .chain(
                    others
                        .into_iter()
                        .map(|t| CatalogOp::AlterTable(Box::new(t))),
                )
                .collect())
        })
        .await?;
    Ok((done(), notices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widenings_are_those_that_cannot_fail() {
        use PgType::*;
        assert!(widens(&Int4, &Int8));
        assert!(widens(&Varchar(Some(10)), &Text));
        assert!(widens(&Varchar(Some(10)), &Varchar(Some(20))));
        assert!(!widens(&Varchar(Some(20)), &Varchar(Some(10))));
        assert!(!widens(&Int8, &Int4));
        assert!(!widens(&Text, &Int4));
        assert!(widens(
            &Int4,
            &Numeric {
                precision: 12,
                scale: 2
            }
        ));
        assert!(!widens(
            &Int8,
            &Numeric {
                precision: 12,
                scale: 2
            }
        ));
    }
}
