//! FOREIGN KEY constraints: read from CREATE TABLE and ALTER TABLE, checked
//! against the referenced table's keys. Rows written to the referencing
//! table are checked by the engine as they are written
//! (`Engine::check_references`); rows deleted from a referenced table are
//! checked here, by a query over each referencing table.

use datafusion::arrow::array::RecordBatch;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{lit, Expr};
use datafusion::sql::sqlparser::ast::{
    ConstraintReferenceMatchKind, ForeignKeyConstraint, ReferentialAction,
};
use tempora_catalog::{CatalogState, ForeignKey, PgType, RefAction, TableDef};
use tempora_common::{Result, SqlState, TemporaError};

use crate::ddl::ident_name;
use crate::SqlSession;

/// A FOREIGN KEY as written, before its referenced table is looked up.
#[derive(Debug, Clone)]
pub(crate) struct ForeignKeySpec {
    name: Option<String>,
    columns: Vec<String>,
    table: datafusion::sql::sqlparser::ast::ObjectName,
    ref_columns: Vec<String>,
    on_delete: RefAction,
    on_update: RefAction,
}

fn action(a: &Option<ReferentialAction>) -> RefAction {
    match a {
        None | Some(ReferentialAction::NoAction) => RefAction::NoAction,
        Some(ReferentialAction::Restrict) => RefAction::Restrict,
        Some(ReferentialAction::Cascade) => RefAction::Cascade,
        Some(ReferentialAction::SetNull) => RefAction::SetNull,
        Some(ReferentialAction::SetDefault) => RefAction::SetDefault,
    }
}

impl ForeignKeySpec {
    /// A table constraint, or a column's `REFERENCES` (`column` given).
    pub(crate) fn read(fk: &ForeignKeyConstraint, column: Option<&str>) -> Result<Self> {
        if matches!(
            fk.match_kind,
            Some(ConstraintReferenceMatchKind::Full | ConstraintReferenceMatchKind::Partial)
        ) {
            return Err(TemporaError::not_supported(
                "MATCH FULL and MATCH PARTIAL foreign keys",
            ));
        }
        let on_delete = action(&fk.on_delete);
        if on_delete == RefAction::SetDefault {
            return Err(
                TemporaError::not_supported("ON DELETE SET DEFAULT in a foreign key").with_hint(
                    "ON DELETE NO ACTION, RESTRICT, CASCADE and SET NULL are supported.",
                ),
            );
        }
        Ok(Self {
            name: fk.name.as_ref().map(ident_name),
            columns: match column {
                Some(c) => vec![c.to_string()],
                None => fk.columns.iter().map(ident_name).collect(),
            },
            table: fk.foreign_table.clone(),
            ref_columns: fk.referred_columns.iter().map(ident_name).collect(),
            on_delete,
            // A referenced key never changes (an UPDATE of a key column is
            // refused), so ON UPDATE has nothing to do.
            on_update: action(&fk.on_update),
        })
    }

    /// The constraint on `table` (as it will be once created or altered),
    /// checked as PostgreSQL checks it.
    pub(crate) fn resolve(&self, state: &CatalogState, table: &TableDef) -> Result<ForeignKey> {
        let (schema, name) = crate::ddl::object_name(&self.table)?;
        let referenced = if schema == table.schema && name == table.name {
            table
        } else {
            match state.table(&schema, &name) {
                Some(t) => t,
                None if state.relation_exists(&schema, &name) => {
                    return Err(TemporaError::new(
                        SqlState::WRONG_OBJECT_TYPE,
                        format!("referenced relation \"{name}\" is not a table"),
                    ))
                }
                None => return Err(TemporaError::undefined_table(&name)),
            }
        };
        let missing = |c: &str| {
            TemporaError::new(
                SqlState::UNDEFINED_COLUMN,
                format!("column \"{c}\" referenced in foreign key constraint does not exist"),
            )
        };
        for c in &self.columns {
            if table.column(c).is_none() {
                return Err(missing(c));
            }
        }
        let ref_columns = if self.ref_columns.is_empty() {
            match referenced.unique_keys.iter().find(|k| k.primary) {
                Some(k) => k.columns.clone(),
                None => {
                    return Err(TemporaError::new(
                        SqlState::INVALID_FOREIGN_KEY,
                        format!("there is no primary key for referenced table \"{name}\""),
                    ))
                }
            }
        } else {
            for c in &self.ref_columns {
                if referenced.column(c).is_none() {
                    return Err(missing(c));
                }
            }
            self.ref_columns.clone()
        };
        if ref_columns.len() != self.columns.len() {
            return Err(TemporaError::new(
                SqlState::INVALID_FOREIGN_KEY,
                "number of referencing and referenced columns for foreign key disagree",
            ));
        }
        let mut sorted = ref_columns.clone();
        sorted.sort();
        let keyed = referenced.unique_keys.iter().any(|k| {
            let mut cols = k.columns.clone();
            cols.sort();
            cols == sorted
        });
        if !keyed {
            return Err(TemporaError::new(
                SqlState::INVALID_FOREIGN_KEY,
                format!(
                    "there is no unique constraint matching given keys for referenced table \"{name}\""
                ),
            ));
        }
        if referenced.is_hypertable() {
            return Err(TemporaError::not_supported(format!(
                "a foreign key referencing hypertable \"{name}\""
            )));
        }
        let fk_name = match &self.name {
            Some(n) => n.clone(),
            None => {
                let base = format!("{}_{}_fkey", table.name, self.columns.join("_"));
                let mut candidate = base.clone();
                let mut n = 0;
                while table.foreign_keys.iter().any(|f| f.name == candidate)
                    || table.unique_keys.iter().any(|k| k.name == candidate)
                {
                    n += 1;
                    candidate = format!("{base}{n}");
                }
                candidate
            }
        };
        for (c, r) in self.columns.iter().zip(&ref_columns) {
            let (Some(col), Some(rcol)) = (table.column(c), referenced.column(r)) else {
                continue;
            };
            if !comparable(&col.ty, &rcol.ty) {
                return Err(TemporaError::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!("foreign key constraint \"{fk_name}\" cannot be implemented"),
                )
                .with_detail(format!(
                    "Key columns \"{c}\" and \"{r}\" are of incompatible types: {} and {}.",
                    col.ty.sql_name(),
                    rcol.ty.sql_name()
                )));
            }
        }
        Ok(ForeignKey {
            name: fk_name,
            columns: self.columns.clone(),
            ref_oid: referenced.oid,
            ref_columns,
            on_delete: self.on_delete,
            on_update: self.on_update,
        })
    }
}

/// Whether values of two column types compare as PostgreSQL's equality
/// operators of a foreign key need (same family).
fn comparable(a: &PgType, b: &PgType) -> bool {
    fn family(t: &PgType) -> u8 {
        match t {
            PgType::Int2 | PgType::Int4 | PgType::Int8 => 1,
            PgType::Float4 | PgType::Float8 | PgType::Numeric { .. } => 2,
            PgType::Text | PgType::Varchar(_) => 3,
            _ => 0,
        }
    }
    a == b || (family(a) != 0 && family(a) == family(b)) || (family(a) == 1 && family(b) == 2)
}

/// A key's values as PostgreSQL's details print them: `(1, abc)`.
fn values_text(values: &[ScalarValue]) -> String {
    values
        .iter()
        .map(|v| match v {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
            v if v.is_null() => "null".into(),
            v => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The non-null keys `fk` references among `deleted` rows of `table`.
fn deleted_keys(
    table: &TableDef,
    fk: &ForeignKey,
    deleted: &[RecordBatch],
) -> Result<Vec<Vec<ScalarValue>>> {
    let positions: Vec<usize> = fk
        .ref_columns
        .iter()
        .filter_map(|c| table.column_index(c))
        .collect();
    let mut keys: Vec<Vec<ScalarValue>> = Vec::new();
    for b in deleted {
        for row in 0..b.num_rows() {
            let key = positions
                .iter()
                .map(|i| ScalarValue::try_from_array(b.column(*i), row))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(TemporaError::from_datafusion)?;
            if key.iter().all(|v| !v.is_null()) {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

/// What rows deleted from `table` do to the rows referencing them: with
/// NO ACTION / RESTRICT, PostgreSQL's 23503 if any is left; with CASCADE
/// they are deleted, with SET NULL their keys become NULL. The changes to
/// the referencing tables' files are added to `cascaded`, for the caller's
/// commit (one with its own). The caller holds the files lock, with the
/// memtables flushed, and the key lock.
pub(crate) async fn on_delete(
    session: &SqlSession,
    guard: &tempora_storage::FilesGuard,
    table: &TableDef,
    deleted: &[RecordBatch],
    cascaded: &mut Vec<tempora_storage::FileChanges>,
) -> Result<()> {
    if deleted.iter().all(|b| b.num_rows() == 0) {
        return Ok(());
    }
    let state = session.engine().catalog().snapshot();
    // Checked in constraint name order, as PostgreSQL fires them.
    let mut dependents: Vec<_> = referencing(&state, table.oid, &[]).collect();
    dependents.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    for (referencing, fk) in dependents {
        let keys = deleted_keys(table, fk, deleted)?;
        if keys.is_empty() {
            continue;
        }
        match fk.on_delete {
            RefAction::NoAction | RefAction::Restrict | RefAction::SetDefault => {
                for part in keys.chunks(2000) {
                    if let Some(found) = referencing_row(session, referencing, fk, part).await? {
                        return Err(TemporaError::new(
                            SqlState::FOREIGN_KEY_VIOLATION,
                            format!(
                                "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                                table.name, fk.name, referencing.name
                            ),
                        )
                        .with_detail(format!(
                            "Key ({})=({}) is still referenced from table \"{}\".",
                            fk.ref_columns.join(", "),
                            values_text(&found),
                            referencing.name
                        )));
                    }
                }
            }
            RefAction::Cascade | RefAction::SetNull => {
                if referencing.oid == table.oid || cascaded.iter().any(|c| c.oid == referencing.oid)
                {
                    return Err(TemporaError::not_supported(format!(
                        "ON DELETE {} that reaches table \"{}\" twice in one statement",
                        fk.on_delete.sql(),
                        referencing.name
                    )));
                }
                let sql = referencing_statement(referencing, fk, &keys)?;
                let stmt = crate::parse(&sql)?
                    .pop()
                    .ok_or_else(|| TemporaError::internal("cascade statement"))?;
                let plan = crate::dml::RewritePlan::plan(session, &stmt).await?;
                cascaded.push(tempora_storage::FileChanges {
                    oid: referencing.oid,
                    ..Default::default()
                });
                let changes = cascaded.last_mut().expect("pushed");
                let (n, rows) = plan
                    .collect(session, guard, referencing, None, changes)
                    .await?;
                if fk.on_delete == RefAction::Cascade && n > 0 {
                    Box::pin(on_delete(session, guard, referencing, &rows, cascaded)).await?;
                }
            }
        }
    }
    Ok(())
}

/// `DELETE FROM referencing WHERE <key> IN (...)` (CASCADE) or `UPDATE
/// referencing SET <key columns> = NULL WHERE ...` (SET NULL).
fn referencing_statement(
    referencing: &TableDef,
    fk: &ForeignKey,
    keys: &[Vec<ScalarValue>],
) -> Result<String> {
    let q = crate::ddl::quote_ident;
    let literal = |column: &str, v: &ScalarValue| -> Result<String> {
        let ty = referencing
            .column(column)
            .ok_or_else(|| TemporaError::undefined_column(column))?
            .ty
            .sql_name();
        let text = match v {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
            other => other.to_string(),
        };
        Ok(format!("CAST('{}' AS {ty})", text.replace('\'', "''")))
    };
    let condition = if fk.columns.len() == 1 {
        let list = keys
            .iter()
            .map(|k| literal(&fk.columns[0], &k[0]))
            .collect::<Result<Vec<_>>>()?;
        format!("{} IN ({})", q(&fk.columns[0]), list.join(", "))
    } else {
        let mut alternatives = Vec::with_capacity(keys.len());
        for k in keys {
            let parts = fk
                .columns
                .iter()
                .zip(k)
                .map(|(c, v)| Ok(format!("{} = {}", q(c), literal(c, v)?)))
                .collect::<Result<Vec<_>>>()?;
            alternatives.push(format!("({})", parts.join(" AND ")));
        }
        alternatives.join(" OR ")
    };
    let target = crate::ddl::quoted_table(referencing);
    Ok(match fk.on_delete {
        RefAction::SetNull => {
            let sets: Vec<String> = fk
                .columns
                .iter()
                .map(|c| format!("{} = NULL", q(c)))
                .collect();
            format!("UPDATE {target} SET {} WHERE {condition}", sets.join(", "))
        }
        _ => format!("DELETE FROM {target} WHERE {condition}"),
    })
}

/// The key of one row of `referencing` that holds one of `keys`, if any.
async fn referencing_row(
    session: &SqlSession,
    referencing: &TableDef,
    fk: &ForeignKey,
    keys: &[Vec<ScalarValue>],
) -> Result<Option<Vec<ScalarValue>>> {
    let column = |name: &str| Expr::Column(Column::new_unqualified(name));
    let filter = if fk.columns.len() == 1 {
        column(&fk.columns[0]).in_list(keys.iter().map(|k| lit(k[0].clone())).collect(), false)
    } else {
        keys.iter()
            .map(|k| {
                fk.columns
                    .iter()
                    .zip(k)
                    .map(|(c, v)| column(c).eq(lit(v.clone())))
                    .reduce(Expr::and)
                    .unwrap_or(lit(false))
            })
            .reduce(Expr::or)
            .unwrap_or(lit(false))
    };
    let reference = datafusion::common::TableReference::full(
        session.database(),
        referencing.schema.clone(),
        referencing.name.clone(),
    );
    let columns: Vec<Expr> = fk.columns.iter().map(|c| column(c)).collect();
    let found = async {
        session
            .context()
            .table(reference)
            .await?
            .filter(filter)?
            .select(columns)?
            .limit(0, Some(1))?
            .collect()
            .await
    }
    .await
    .map_err(TemporaError::from_datafusion)?;
    let Some(batch) = found.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let values = (0..batch.num_columns())
        .map(|i| ScalarValue::try_from_array(batch.column(i), 0))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(TemporaError::from_datafusion)?;
    Ok(Some(values))
}

/// Rows already in `table` must satisfy a foreign key added to it
/// (`ALTER TABLE ... ADD FOREIGN KEY`).
pub(crate) async fn check_existing_rows(
    session: &SqlSession,
    state: &CatalogState,
    table: &TableDef,
    fk: &ForeignKey,
) -> Result<()> {
    let Some(referenced) = state
        .table_by_oid(fk.ref_oid)
        .or(Some(table).filter(|t| t.oid == fk.ref_oid))
    else {
        return Ok(());
    };
    let q = crate::ddl::quote_ident;
    let not_null: Vec<String> = fk
        .columns
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", q(c)))
        .collect();
    let matches: Vec<String> = fk
        .columns
        .iter()
        .zip(&fk.ref_columns)
        .map(|(c, r)| format!("p.{} = c.{}", q(r), q(c)))
        .collect();
    let select: Vec<String> = fk.columns.iter().map(|c| format!("c.{}", q(c))).collect();
    let sql = format!(
        "SELECT {} FROM {} AS c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {}) LIMIT 1",
        select.join(", "),
        crate::ddl::quoted_table(table),
        not_null.join(" AND "),
        crate::ddl::quoted_table(referenced),
        matches.join(" AND ")
    );
    let rows = session.query_sql(&sql).await?;
    let Some(batch) = rows.iter().find(|b| b.num_rows() > 0) else {
        return Ok(());
    };
    let values = (0..batch.num_columns())
        .map(|i| ScalarValue::try_from_array(batch.column(i), 0))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(TemporaError::from_datafusion)?;
    Err(tempora_storage::unique::reference_violation(
        fk,
        &table.name,
        &values_text(&values),
        &referenced.name,
    ))
}

/// The tables (other than those in `dropping`) with a foreign key into
/// `oid`, and those keys.
pub(crate) fn referencing<'a>(
    state: &'a CatalogState,
    oid: u32,
    dropping: &'a [u32],
) -> impl Iterator<Item = (&'a TableDef, &'a ForeignKey)> + 'a {
    state
        .tables
        .values()
        .filter(move |t| !dropping.contains(&t.oid))
        .flat_map(move |t| {
            t.foreign_keys
                .iter()
                .filter(move |fk| fk.ref_oid == oid)
                .map(move |fk| (t, fk))
        })
}
