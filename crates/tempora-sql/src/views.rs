//! `CREATE [OR REPLACE] VIEW` and `DROP VIEW`; the views that keep a
//! table (or view) from being dropped without CASCADE.
//!
//! A view is its query, rewritten as Tempora plans queries and stored in
//! the catalog (`ViewDef`); every read plans it again against the tables as
//! they are (`tempora_query::session`).

use std::collections::BTreeSet;

use datafusion::sql::sqlparser::ast::{CreateView, ObjectName, Statement, VisitMut, VisitorMut};
use tempora_catalog::{CatalogOp, CatalogState, ViewDef};
use tempora_common::{Result, SqlState, TemporaError};

use crate::ddl::{ident_name, object_name, quote_ident};
use crate::{Notice, Outcome, SqlSession};

/// The relations (schema, name) a statement reads.
fn relations(stmt: &mut Statement) -> Vec<(String, String)> {
    struct Found(Vec<(String, String)>);
    impl VisitorMut for Found {
        type Break = ();
        fn pre_visit_relation(&mut self, name: &mut ObjectName) -> std::ops::ControlFlow<()> {
            if let Ok(n) = object_name(name) {
                self.0.push(n);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut found = Found(Vec::new());
    let _ = stmt.visit(&mut found);
    found.0
}

pub(crate) async fn create_view(
    session: &SqlSession,
    cv: &CreateView,
) -> Result<(Outcome, Vec<Notice>)> {
    if cv.materialized {
        let continuous = cv.options.to_string().to_lowercase().contains("continuous");
        if continuous {
            return Err(TemporaError::not_supported(
                "continuous aggregates (CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous))",
            ));
        }
        return crate::matviews::create(session, cv, true).await;
    }
    let (schema, name) = object_name(&cv.name)?;
    if !session.engine().catalog().snapshot().schema_exists(&schema) {
        return Err(crate::ddl::no_schema(&schema));
    }
    let ViewQuery {
        sql,
        definition,
        read,
        functions,
    } = view_query(session, cv, &name).await?;
    if cv.or_replace && !cv.if_not_exists {
        let old = session
            .engine()
            .catalog()
            .snapshot()
            .view(&schema, &name)
            .cloned();
        if let Some(old) = old.filter(|v| v.continuous.is_none() && v.materialized.is_none()) {
            // A view that no longer plans has no columns to keep.
            if let Ok(before) = session.plan_sql(&old.sql).await {
                let after = session.plan_sql(&sql).await?;
                keeps_columns(before.schema().as_arrow(), after.schema().as_arrow())?;
            }
        }
    }
    let mut skipped = false;
    session
        .engine()
        .catalog()
        .commit(|state| {
            let depends_on = crate::views::depends_on(state, &read, &functions);
            let oid = match state.view(&schema, &name) {
                Some(_) if cv.if_not_exists => {
                    skipped = true;
                    return Ok(vec![]);
                }
                Some(v) if cv.or_replace => v.oid,
                Some(_) => return Err(already_exists(&name)),
                None if state.relation_exists(&schema, &name) => {
                    return Err(if cv.or_replace && state.table(&schema, &name).is_some() {
                        TemporaError::new(
                            SqlState::WRONG_OBJECT_TYPE,
                            format!("\"{name}\" is not a view"),
                        )
                    } else {
                        already_exists(&name)
                    });
                }
                None => state.next_oid,
            };
            // A replaced view that would read itself, directly or through
            // other views, would expand without end on every read.
            let mut pending: Vec<u32> = depends_on.iter().copied().collect();
            let mut seen = Vec::new();
            while let Some(d) = pending.pop() {
                if d == oid && state.view(&schema, &name).is_some() {
                    return Err(TemporaError::new(
                        SqlState::INVALID_OBJECT_DEFINITION,
                        format!("infinite recursion detected in rules for relation \"{name}\""),
                    ));
                }
                if seen.contains(&d) {
                    continue;
                }
                seen.push(d);
                if let Some(v) = state.views.values().find(|v| v.oid == d) {
                    pending.extend(v.depends_on.iter().copied());
                }
            }
            Ok(vec![CatalogOp::PutView(ViewDef {
                oid,
                schema: schema.clone(),
                name: name.clone(),
                sql: sql.clone(),
                definition: definition.clone(),
                depends_on: depends_on.into_iter().filter(|d| *d != oid).collect(),
                continuous: None,
                materialized: None,
                comment: None,
            })])
        })
        .await?;
    let notices = if skipped {
        vec![Notice::info(
            SqlState::DUPLICATE_TABLE,
            format!("relation \"{name}\" already exists, skipping"),
        )]
    } else {
        vec![]
    };
    Ok((Outcome::Command("CREATE VIEW".into()), notices))
}

/// A view's query as Tempora plans it (its column names applied), the
/// query as written, and the relations it reads; planned now, so a view
/// that cannot be read is never created.
pub(crate) async fn view_query(
    session: &SqlSession,
    cv: &CreateView,
    name: &str,
) -> Result<ViewQuery> {
    let definition = cv.query.to_string();
    let mut query = Statement::Query(cv.query.clone());
    let functions = crate::functions::inline(session, &mut query)?;
    let mut stmt = crate::rewrite_query(query);
    let read = relations(&mut stmt);
    let mut sql = stmt.to_string();
    let plan = session.plan_sql(&sql).await?;
    if !cv.columns.is_empty() {
        let fields: Vec<String> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if cv.columns.len() > fields.len() {
            return Err(TemporaError::new(
                SqlState::SYNTAX_ERROR,
                "CREATE VIEW specifies more column names than columns",
            ));
        }
        // Columns not named keep their own names, as in PostgreSQL.
        let cols: Vec<String> = cv
            .columns
            .iter()
            .map(|c| ident_name(&c.name))
            .chain(fields.into_iter().skip(cv.columns.len()))
            .map(|c| quote_ident(&c))
            .collect();
        sql = format!(
            "SELECT * FROM ({sql}) AS {}({})",
            quote_ident(name),
            cols.join(", ")
        );
        session.plan_sql(&sql).await?;
    }
    Ok(ViewQuery {
        sql,
        definition,
        read,
        functions,
    })
}

/// PostgreSQL's rule for `CREATE OR REPLACE VIEW`: the new query keeps the
/// old columns, with their names and types, in their places, and may add
/// columns after them.
fn keeps_columns(
    before: &datafusion::arrow::datatypes::Schema,
    after: &datafusion::arrow::datatypes::Schema,
) -> Result<()> {
    let invalid = |message: String| TemporaError::new(SqlState::INVALID_TABLE_DEFINITION, message);
    if after.fields().len() < before.fields().len() {
        return Err(invalid("cannot drop columns from view".into()));
    }
    for (old, new) in before.fields().iter().zip(after.fields().iter()) {
        if old.name() != new.name() {
            return Err(invalid(format!(
                "cannot change name of view column \"{}\" to \"{}\"",
                old.name(),
                new.name()
            ))
            .with_hint(
                "Use ALTER VIEW ... RENAME COLUMN ... to change name of view column instead.",
            ));
        }
        let (was, is) = (
            tempora_query::pg_types::pg_type_name(old.data_type()),
            tempora_query::pg_types::pg_type_name(new.data_type()),
        );
        if was != is {
            return Err(invalid(format!(
                "cannot change data type of view column \"{}\" from {was} to {is}",
                old.name()
            )));
        }
    }
    Ok(())
}

/// A view's query as [`view_query`] plans it.
pub(crate) struct ViewQuery {
    pub sql: String,
    pub definition: String,
    /// The relations (schema, name) it reads.
    pub read: Vec<(String, String)>,
    /// The oids of the SQL functions it calls (inlined in `sql`).
    pub functions: Vec<u32>,
}

/// The oids of the tables and views among `read` (schema, name), and of
/// the `functions` that still exist.
pub(crate) fn depends_on(
    state: &CatalogState,
    read: &[(String, String)],
    functions: &[u32],
) -> BTreeSet<u32> {
    let functions = functions
        .iter()
        .copied()
        .filter(|f| state.functions.contains_key(f));
    read.iter()
        .filter_map(|(s, n)| {
            state
                .table(s, n)
                .map(|t| t.oid)
                .or_else(|| state.view(s, n).map(|v| v.oid))
        })
        .chain(functions)
        .collect()
}

fn already_exists(name: &str) -> TemporaError {
    TemporaError::new(
        SqlState::DUPLICATE_TABLE,
        format!("relation \"{name}\" already exists"),
    )
}

/// The views that must go when the relations `dropping` go: those reading
/// them, and the views reading those, in drop order, each also added to
/// `cascaded` ([`Notice::cascade`]). Without `cascade`, PostgreSQL's error
/// naming the first.
pub(crate) fn dependent_views(
    state: &CatalogState,
    dropping: &[(u32, String, &str)],
    cascade: bool,
    cascaded: &mut Vec<String>,
) -> Result<Vec<u32>> {
    let mut doomed: Vec<u32> = dropping.iter().map(|(oid, _, _)| *oid).collect();
    let mut views = Vec::new();
    loop {
        let next = state
            .views
            .values()
            .find(|v| !doomed.contains(&v.oid) && v.depends_on.iter().any(|d| doomed.contains(d)));
        let Some(v) = next else { break };
        if !cascade {
            let (_, name, kind) = dropping
                .iter()
                .find(|(oid, _, _)| v.depends_on.contains(oid))
                .cloned()
                .unwrap_or((0, v.name.clone(), "view"));
            return Err(TemporaError::new(
                SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                format!("cannot drop {kind} {name} because other objects depend on it"),
            )
            .with_detail(format!(
                "{} {} depends on {kind} {name}",
                view_kind(v),
                v.name
            ))
            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
        }
        cascaded.push(format!("{} {}", view_kind(v), v.name));
        doomed.push(v.oid);
        views.push(v.oid);
    }
    Ok(views)
}

/// How PostgreSQL names a view in messages.
fn view_kind(v: &ViewDef) -> &'static str {
    if v.materialized.is_some() {
        "materialized view"
    } else {
        "view"
    }
}

/// The ops dropping view `oid`: a continuous aggregate's materialization
/// goes with it (its files are added to `dropped`).
pub(crate) fn drop_view_ops(
    state: &CatalogState,
    oid: u32,
    dropped: &mut Vec<(u32, Vec<String>)>,
) -> Vec<CatalogOp> {
    let mut ops = vec![CatalogOp::DropView { oid }];
    if let Some(mat) = state
        .views
        .get(&oid)
        .and_then(|v| v.storage_oid())
        .and_then(|o| state.table_by_oid(o))
    {
        dropped.push((mat.oid, mat.all_files().map(|f| f.path.clone()).collect()));
        ops.push(CatalogOp::DropTable { oid: mat.oid });
    }
    ops
}

/// `DROP VIEW`, or with `materialized` `DROP MATERIALIZED VIEW` (of
/// continuous aggregates: their materializations go with them).
pub(crate) async fn drop_views(
    session: &SqlSession,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
    materialized: bool,
) -> Result<(Outcome, Vec<Notice>)> {
    let kind = if materialized {
        "materialized view"
    } else {
        "view"
    };
    let targets = names.iter().map(object_name).collect::<Result<Vec<_>>>()?;
    let mut notices = Vec::new();
    let mut dropped = Vec::new();
    session
        .engine()
        .catalog()
        .commit(|state| {
            notices.clear();
            dropped.clear();
            let mut dropping: Vec<(u32, String, &str)> = Vec::new();
            for (schema, name) in &targets {
                match state.view(schema, name) {
                    Some(v) if v.is_materialized() == materialized => {
                        dropping.push((v.oid, v.name.clone(), "view"))
                    }
                    Some(_) if materialized => {
                        return Err(TemporaError::new(
                            SqlState::WRONG_OBJECT_TYPE,
                            format!("\"{name}\" is not a materialized view"),
                        )
                        .with_hint("Use DROP VIEW to remove a view."))
                    }
                    Some(v) if v.materialized.is_some() => {
                        return Err(TemporaError::new(
                            SqlState::WRONG_OBJECT_TYPE,
                            format!("\"{name}\" is not a view"),
                        )
                        .with_hint("Use DROP MATERIALIZED VIEW to remove a materialized view."))
                    }
                    Some(_) => {
                        return Err(TemporaError::new(
                            SqlState::FEATURE_NOT_SUPPORTED,
                            "cannot drop continuous aggregate using DROP VIEW",
                        )
                        .with_hint("Use DROP MATERIALIZED VIEW to drop a continuous aggregate."))
                    }
                    None if state.table(schema, name).is_some() => {
                        return Err(TemporaError::new(
                            SqlState::WRONG_OBJECT_TYPE,
                            format!("\"{name}\" is not a {kind}"),
                        )
                        .with_hint("Use DROP TABLE to remove a table."))
                    }
                    None if if_exists => notices.push(Notice::info(
                        SqlState::SUCCESSFUL_COMPLETION,
                        format!("{kind} \"{name}\" does not exist, skipping"),
                    )),
                    None => {
                        return Err(TemporaError::new(
                            SqlState::UNDEFINED_TABLE,
                            format!("{kind} \"{name}\" does not exist"),
                        ))
                    }
                }
            }
            let mut cascaded = Vec::new();
            let more = dependent_views(state, &dropping, cascade, &mut cascaded)?;
            if materialized {
                cascaded.extend(crate::caggs::cascaded_chunks(state, &dropping));
            }
            notices.extend(Notice::cascade(&cascaded));
            Ok(dropping
                .iter()
                .map(|(oid, _, _)| *oid)
                .chain(more)
                .flat_map(|oid| drop_view_ops(state, oid, &mut dropped))
                .collect())
        })
        .await?;
    session.drop_tables(dropped);
    let tag = if materialized {
        "DROP MATERIALIZED VIEW"
    } else {
        "DROP VIEW"
    };
    Ok((Outcome::Command(tag.into()), notices))
}
