//! `CREATE INDEX` and `DROP INDEX`.
//!
//! Tempora keeps no B-trees: an index is a catalog entry (listed by
//! `pg_indexes`, shown by `\d`) naming the columns queries filter on, whose
//! statistics new files keep; a UNIQUE index is enforced on every write
//! through its [`UniqueKey`], as a UNIQUE constraint is.

use datafusion::sql::sqlparser::ast::{CreateIndex, Expr as SqlExpr, ObjectName};
use tempora_catalog::{CatalogOp, CatalogState, IndexColumn, IndexDef, TableDef, UniqueKey};
use tempora_common::{Result, SqlState, TemporaError};

use crate::ddl::{ident_name, object_name};
use crate::{Notice, Outcome, SqlSession};

/// PostgreSQL's longest identifier (NAMEDATALEN - 1 bytes).
const MAX_IDENTIFIER: usize = 63;

/// `name1_name2_label` cut to PostgreSQL's identifier length the way it
/// cuts them (the longer of the two parts loses a character at a time).
fn make_object_name(name1: &str, name2: &str, label: &str) -> String {
    let mut n1: Vec<char> = name1.chars().collect();
    let mut n2: Vec<char> = name2.chars().collect();
    let overhead = label.len() + 1 + usize::from(!n2.is_empty());
    let len = |v: &[char]| v.iter().map(|c| c.len_utf8()).sum::<usize>();
    while len(&n1) + len(&n2) + overhead > MAX_IDENTIFIER {
        if len(&n1) > len(&n2) {
            n1.pop();
        } else {
            n2.pop();
        }
    }
    let mut out: String = n1.into_iter().collect();
    if !n2.is_empty() {
        out.push('_');
        out.extend(n2);
    }
    out.push('_');
    out.push_str(label);
    out
}

/// A name for a new relation as PostgreSQL chooses one: `name1_name2_label`,
/// then `..._label1`, `..._label2`, ... until no relation of `schema` has it.
pub(crate) fn choose_relation_name(
    state: &CatalogState,
    schema: &str,
    name1: &str,
    name2: &str,
    label: &str,
) -> String {
    let mut pass = 0;
    loop {
        let label = if pass == 0 {
            label.to_string()
        } else {
            format!("{label}{pass}")
        };
        let name = make_object_name(name1, name2, &label);
        if !state.relation_exists(schema, &name) {
            return name;
        }
        pass += 1;
    }
}

/// The index a hypertable gets on its time column (TimescaleDB's
/// `create_default_indexes`), unless an index or key on the time column
/// alone exists (one on `(time, v)` does not count, as in TimescaleDB).
pub(crate) fn default_time_index(
    state: &CatalogState,
    table: &TableDef,
    time_column: &str,
) -> Option<IndexDef> {
    let exists = table
        .indexes
        .iter()
        .any(|i| matches!(&i.columns[..], [c] if c.column == time_column && !c.expression))
        || table
            .unique_keys
            .iter()
            .any(|k| matches!(&k.columns[..], [c] if c == time_column));
    (!exists).then(|| IndexDef {
        name: choose_relation_name(state, &table.schema, &table.name, time_column, "idx"),
        columns: vec![IndexColumn {
            column: time_column.to_string(),
            expression: false,
            desc: true,
            nulls_first: None,
        }],
        unique: false,
        method: "btree".into(),
        include: vec![],
        predicate: None,
    })
}

/// The index a hypertable gets on its first space dimension and time
/// (`(device, time DESC)`, TimescaleDB's default), unless an index of
/// exactly those two columns exists.
pub(crate) fn default_space_index(
    state: &CatalogState,
    table: &TableDef,
    space_column: &str,
    time_column: &str,
) -> Option<IndexDef> {
    let exists = table.indexes.iter().any(|i| {
        i.columns.len() == 2
            && i.columns[0].column == space_column
            && i.columns[1].column == time_column
    });
    let column = |name: &str, desc: bool| IndexColumn {
        column: name.to_string(),
        expression: false,
        desc,
        nulls_first: None,
    };
    (!exists).then(|| IndexDef {
        name: choose_relation_name(
            state,
            &table.schema,
            &table.name,
            &format!("{space_column}_{time_column}"),
            "idx",
        ),
        columns: vec![column(space_column, false), column(time_column, true)],
        unique: false,
        method: "btree".into(),
        include: vec![],
        predicate: None,
    })
}

/// The table an index statement names, or 42P01.
fn find_table<'a>(state: &'a CatalogState, name: &ObjectName) -> Result<&'a TableDef> {
    let (schema, table) = object_name(name)?;
    state.table(&schema, &table).ok_or_else(|| {
        TemporaError::new(
            SqlState::UNDEFINED_TABLE,
            format!("relation \"{table}\" does not exist"),
        )
    })
}

/// The index a `CREATE INDEX` describes (named, when it names itself).
fn index_of(ci: &CreateIndex, table: &TableDef) -> Result<(Option<String>, IndexDef)> {
    let mut columns = Vec::new();
    for c in &ci.columns {
        let (column, expression) = match &c.column.expr {
            SqlExpr::Identifier(i) => (ident_name(i), false),
            SqlExpr::Nested(inner) => (inner.to_string(), true),
            other => (other.to_string(), true),
        };
        if !expression && table.column(&column).is_none() {
            return Err(TemporaError::undefined_column(&column));
        }
        columns.push(IndexColumn {
            column,
            expression,
            desc: c.column.options.asc == Some(false),
            nulls_first: c.column.options.nulls_first,
        });
    }
    if ci.unique {
        if columns.iter().any(|c| c.expression) {
            return Err(TemporaError::not_supported("unique indexes on expressions"));
        }
        if ci.predicate.is_some() {
            return Err(TemporaError::not_supported("partial unique indexes"));
        }
        if ci.nulls_distinct == Some(false) {
            return Err(TemporaError::not_supported("NULLS NOT DISTINCT"));
        }
    }
    let include = ci.include.iter().map(ident_name).collect::<Vec<_>>();
    if let Some(missing) = include.iter().find(|c| table.column(c).is_none()) {
        return Err(TemporaError::undefined_column(missing));
    }
    let name = match &ci.name {
        Some(n) => Some(object_name(n)?.1),
        None => None,
    };
    Ok((
        name,
        IndexDef {
            name: String::new(),
            columns,
            unique: ci.unique,
            method: ci
                .using
                .as_ref()
                .map_or_else(|| "btree".into(), |m| m.to_string().to_lowercase()),
            include,
            predicate: ci.predicate.as_ref().map(|p| p.to_string()),
        },
    ))
}

/// What PostgreSQL adds to a table name to name an index of these keys:
/// the column names joined by `_` (`expr` for expressions).
fn name_addition(index: &IndexDef) -> String {
    let mut out = String::new();
    for c in &index.columns {
        let part = if c.expression {
            function_label(&c.column).unwrap_or("expr")
        } else {
            &c.column
        };
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(part);
        if out.len() >= MAX_IDENTIFIER {
            break;
        }
    }
    out
}

/// The function an expression key calls (`lower` of `lower(v)`), which
/// PostgreSQL names the key by.
fn function_label(expr: &str) -> Option<&str> {
    let (name, _) = expr.split_once('(')?;
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then_some(name)
}

/// PostgreSQL's error for a unique index (or key) that the table's rows
/// already break: the first key they hold twice names it.
pub(crate) async fn check_unique(
    session: &SqlSession,
    table: &TableDef,
    key: &UniqueKey,
) -> Result<()> {
    let cols: Vec<String> = key
        .columns
        .iter()
        .map(|c| crate::ddl::quote_ident(c))
        .collect();
    let list = cols.join(", ");
    let not_null: Vec<String> = cols.iter().map(|c| format!("{c} IS NOT NULL")).collect();
    let sql = format!(
        "SELECT {list} FROM {} WHERE {} GROUP BY {list} HAVING count(*) > 1 LIMIT 1",
        crate::ddl::quoted_table(table),
        not_null.join(" AND "),
    );
    let batches = session.query_sql(&sql).await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(());
    };
    // The detail names the key's columns in the result's layout.
    let keys_only = TableDef {
        columns: key
            .columns
            .iter()
            .filter_map(|c| table.column(c).cloned())
            .collect(),
        ..TableDef::default()
    };
    Err(TemporaError::new(
        SqlState::UNIQUE_VIOLATION,
        format!("could not create unique index \"{}\"", key.name),
    )
    .with_detail(tempora_storage::unique::duplicated_detail(
        key, &keys_only, batch, 0,
    )))
}

pub(crate) async fn create_index(
    session: &SqlSession,
    ci: &CreateIndex,
) -> Result<(Outcome, Vec<Notice>)> {
    let catalog = session.engine().catalog().clone();
    let before = catalog.snapshot();
    let table = find_table(&before, &ci.table_name)?.clone();
    let (given, mut index) = index_of(ci, &table)?;
    let already = |name: &str| {
        TemporaError::new(
            SqlState::DUPLICATE_TABLE,
            format!("relation \"{name}\" already exists"),
        )
    };
    let skip_notice = |name: &str| {
        Notice::info(
            SqlState::DUPLICATE_TABLE,
            format!("relation \"{name}\" already exists, skipping"),
        )
    };
    let done = || Outcome::Command("CREATE INDEX".into());
    if let Some(name) = &given {
        if before.relation_exists(&table.schema, name) {
            if ci.if_not_exists {
                return Ok((done(), vec![skip_notice(name)]));
            }
            return Err(already(name));
        }
    }
    if index.unique {
        if let Some(h) = &table.hypertable {
            crate::hypertable::check_unique_columns(h, |c| {
                index.columns.iter().any(|i| !i.expression && i.column == c)
            })?;
        }
    }
    let key = |name: &str, index: &IndexDef| UniqueKey {
        name: name.to_string(),
        columns: index.columns.iter().map(|c| c.column.clone()).collect(),
        primary: false,
        index: true,
    };
    if index.unique {
        // The name the index would take (chosen again at the commit).
        let name = given.clone().unwrap_or_else(|| {
            choose_relation_name(
                &before,
                &table.schema,
                &table.name,
                &name_addition(&index),
                "idx",
            )
        });
        check_unique(session, &table, &key(&name, &index)).await?;
    }
    let mut skipped = None;
    catalog
        .commit(|state| {
            let Some(current) = state.table_by_oid(table.oid) else {
                return Err(TemporaError::undefined_table(&table.name));
            };
            let name = match &given {
                Some(name) if state.relation_exists(&current.schema, name) => {
                    if ci.if_not_exists {
                        skipped = Some(name.clone());
                        return Ok(vec![]);
                    }
                    return Err(already(name));
                }
                Some(name) => name.clone(),
                None => choose_relation_name(
                    state,
                    &current.schema,
                    &current.name,
                    &name_addition(&index),
                    "idx",
                ),
            };
            index.name = name.clone();
            let mut def = current.definition_only();
            if index.unique {
                def.unique_keys.push(key(&name, &index));
            }
            def.indexes.push(index.clone());
            Ok(vec![CatalogOp::AlterTable(Box::new(def))])
        })
        .await?;
    let notices = skipped.as_deref().map(skip_notice).into_iter().collect();
    Ok((done(), notices))
}

pub(crate) async fn drop_index(
    session: &SqlSession,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<(Outcome, Vec<Notice>)> {
    let targets = names.iter().map(object_name).collect::<Result<Vec<_>>>()?;
    let mut notices = vec![];
    session
        .engine()
        .catalog()
        .commit(|state| {
            notices.clear();
            let mut changed: Vec<TableDef> = Vec::new();
            for (schema, name) in &targets {
                let owner = changed
                    .iter()
                    .find(|t| t.has_index(name))
                    .cloned()
                    .or_else(|| {
                        state
                            .tables
                            .values()
                            .find(|t| t.schema == *schema && t.has_index(name))
                            .cloned()
                    });
                let Some(mut def) = owner else {
                    if state.table(schema, name).is_some() {
                        return Err(TemporaError::new(
                            SqlState::WRONG_OBJECT_TYPE,
                            format!("\"{name}\" is not an index"),
                        )
                        .with_hint("Use DROP TABLE to remove a table."));
                    }
                    if if_exists {
                        notices.push(Notice::info(SqlState::SUCCESSFUL_COMPLETION, format!("index \"{name}\" does not exist, skipping")));
                        continue;
                    }
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("index \"{name}\" does not exist"),
                    ));
                };
                if def.unique_keys.iter().any(|k| &k.name == name && !k.index) {
                    return Err(TemporaError::new(
                        SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                        format!(
                            "cannot drop index {name} because constraint {name} on table {} requires it",
                            def.name
                        ),
                    )
                    .with_hint(format!(
                        "You can drop constraint {name} on table {} instead.",
                        def.name
                    )));
                }
                def.indexes.retain(|i| &i.name != name);
                def.unique_keys.retain(|k| &k.name != name);
                changed.retain(|t| t.oid != def.oid);
                changed.push(def);
            }
            Ok(changed
                .into_iter()
                .map(|mut def| {
                    def.chunks.clear();
                    def.files.clear();
                    CatalogOp::AlterTable(Box::new(def))
                })
                .collect())
        })
        .await?;
    Ok((Outcome::Command("DROP INDEX".into()), notices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_as_postgresql_cuts_them() {
        assert_eq!(make_object_name("t", "a_b", "idx"), "t_a_b_idx");
        let long = "x".repeat(70);
        let name = make_object_name(&long, "device", "idx");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_device_idx"));
        let name = make_object_name(&"a".repeat(40), &"b".repeat(40), "idx");
        assert_eq!(name.len(), 63);
        assert_eq!(name, format!("{}_{}_idx", "a".repeat(29), "b".repeat(29)));
    }

    #[test]
    fn chosen_names_skip_taken_ones() {
        let mut state = CatalogState::default();
        let t = TableDef {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            indexes: vec![IndexDef {
                name: "t_a_idx".into(),
                columns: vec![],
                unique: false,
                method: "btree".into(),
                include: vec![],
                predicate: None,
            }],
            ..TableDef::default()
        };
        state.tables.insert(1, t);
        assert_eq!(
            choose_relation_name(&state, "public", "t", "a", "idx"),
            "t_a_idx1"
        );
        assert_eq!(
            choose_relation_name(&state, "public", "t", "b", "idx"),
            "t_b_idx"
        );
    }
}
