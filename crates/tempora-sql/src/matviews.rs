//! PostgreSQL's materialized views (`CREATE MATERIALIZED VIEW` without
//! `timescaledb.continuous`) and `REFRESH MATERIALIZED VIEW`.
//!
//! A materialized view is a [`ViewDef`] whose rows live in a plain table of
//! its own (`MaterializedView::table_oid`, hidden from `pg_class`). A
//! refresh runs the query and swaps the table's files for one new file in a
//! single catalog commit, so readers see the old rows or the new ones.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{CreateView, ObjectName, Statement};
use datafusion::sql::sqlparser::tokenizer::Token;
use tempora_catalog::{CatalogOp, ColumnDef, MaterializedView, TableDef, ViewDef, CHUNK_SCHEMA};
use tempora_common::{Result, SqlState, TemporaError};
use tempora_storage::FileChanges;

use crate::ddl::object_name;
use crate::{Notice, Outcome, SqlSession};

/// A statement the SQL parser cannot read whole.
#[derive(Debug, Clone)]
pub enum MatViewCommand {
    /// `CREATE MATERIALIZED VIEW ... WITH [NO] DATA`.
    Create {
        stmt: Box<Statement>,
        with_data: bool,
    },
    /// `REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH [NO] DATA]`.
    Refresh {
        name: ObjectName,
        with_data: bool,
        concurrently: bool,
    },
}

fn words(sql: &str) -> Option<Vec<(Token, usize)>> {
    Some(
        crate::located_tokens(sql)?
            .into_iter()
            .filter(|(t, _)| !matches!(t, Token::Whitespace(_) | Token::SemiColon))
            .collect(),
    )
}

fn is_word(t: Option<&(Token, usize)>, w: &str) -> bool {
    matches!(t, Some((Token::Word(x), _)) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
}

/// `WITH [NO] DATA` at the end of `tokens`: (whether data, tokens it takes).
fn trailing_with_data(tokens: &[(Token, usize)]) -> Option<(bool, usize)> {
    let n = tokens.len();
    if n >= 3
        && is_word(tokens.get(n - 3), "with")
        && is_word(tokens.get(n - 2), "no")
        && is_word(tokens.get(n - 1), "data")
    {
        return Some((false, 3));
    }
    if n >= 2 && is_word(tokens.get(n - 2), "with") && is_word(tokens.get(n - 1), "data") {
        return Some((true, 2));
    }
    None
}

/// Reads `REFRESH MATERIALIZED VIEW`, and `CREATE MATERIALIZED VIEW` ending
/// in `WITH [NO] DATA`; None for any other text.
pub fn parse(sql: &str) -> Option<Result<MatViewCommand>> {
    let head = sql.trim_start().get(..7)?;
    if !head.eq_ignore_ascii_case("refresh") && !head.eq_ignore_ascii_case("create ") {
        return None;
    }
    let tokens = words(sql)?;
    if is_word(tokens.first(), "refresh") {
        if !is_word(tokens.get(1), "materialized") || !is_word(tokens.get(2), "view") {
            return None;
        }
        let mut rest = &tokens[3..];
        let concurrently = is_word(rest.first(), "concurrently");
        if concurrently {
            rest = &rest[1..];
        }
        let (with_data, taken) = trailing_with_data(rest).unwrap_or((true, 0));
        let name_tokens = &rest[..rest.len() - taken];
        let text: String = name_tokens.iter().map(|(t, _)| t.to_string()).collect();
        use tempora_common::sql_parser::{parser, TemporaDialect};
        let name = parser(&TemporaDialect::for_text(&text), &text)
            .and_then(|mut p| p.parse_object_name(false))
            .map_err(|e| crate::parse_error(&text, e));
        return Some(name.and_then(|name| {
            if name.0.is_empty() || name_tokens.is_empty() {
                return Err(TemporaError::syntax("syntax error at end of input"));
            }
            if concurrently && !with_data {
                return Err(TemporaError::new(
                    SqlState::SYNTAX_ERROR,
                    "REFRESH options CONCURRENTLY and WITH NO DATA cannot be used together",
                ));
            }
            Ok(MatViewCommand::Refresh {
                name,
                with_data,
                concurrently,
            })
        }));
    }
    if !is_word(tokens.first(), "create")
        || !is_word(tokens.get(1), "materialized")
        || !is_word(tokens.get(2), "view")
    {
        return None;
    }
    let (with_data, taken) = trailing_with_data(&tokens)?;
    let cut = tokens[tokens.len() - taken].1;
    let text = &sql[..cut];
    Some(
        crate::parse(text).and_then(|mut stmts| match (stmts.pop(), stmts.is_empty()) {
            (Some(stmt @ Statement::CreateView(_)), true) => Ok(MatViewCommand::Create {
                stmt: Box::new(stmt),
                with_data,
            }),
            _ => Err(TemporaError::syntax("syntax error at or near \"WITH\"")),
        }),
    )
}

impl MatViewCommand {
    pub(crate) fn tag(&self) -> &'static str {
        match self {
            MatViewCommand::Create { .. } => "CREATE MATERIALIZED VIEW",
            MatViewCommand::Refresh { .. } => "REFRESH MATERIALIZED VIEW",
        }
    }

    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        match self {
            MatViewCommand::Create { stmt, with_data } => match stmt.as_ref() {
                Statement::CreateView(cv) => create(session, cv, *with_data).await,
                _ => Err(TemporaError::internal("not a CREATE MATERIALIZED VIEW")),
            },
            MatViewCommand::Refresh {
                name,
                with_data,
                concurrently,
            } => {
                refresh(session, name, *with_data, *concurrently).await?;
                Ok((Outcome::Command(self.tag().into()), vec![]))
            }
        }
    }
}

/// `CREATE MATERIALIZED VIEW [IF NOT EXISTS] name [(columns)] AS query`.
pub(crate) async fn create(
    session: &SqlSession,
    cv: &CreateView,
    with_data: bool,
) -> Result<(Outcome, Vec<Notice>)> {
    let tag = || Outcome::Command("CREATE MATERIALIZED VIEW".into());
    if cv.or_replace {
        return Err(TemporaError::syntax(
            "syntax error at or near \"MATERIALIZED\"",
        ));
    }
    let (schema, name) = object_name(&cv.name)?;
    if !session.engine().catalog().snapshot().schema_exists(&schema) {
        return Err(crate::ddl::no_schema(&schema));
    }
    let crate::views::ViewQuery {
        sql,
        definition,
        read,
        functions,
    } = crate::views::view_query(session, cv, &name).await?;
    let plan = session.plan_sql(&sql).await?;
    let columns = plan
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            Ok(ColumnDef::new(
                i as u32 + 1,
                f.name().clone(),
                crate::caggs::column_type(f.data_type(), f.name(), "materialized view")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut skipped = false;
    let mut created = None;
    session
        .engine()
        .catalog()
        .commit(|state| {
            if state.relation_exists(&schema, &name) {
                if cv.if_not_exists {
                    skipped = true;
                    return Ok(vec![]);
                }
                return Err(TemporaError::new(
                    SqlState::DUPLICATE_TABLE,
                    format!("relation \"{name}\" already exists"),
                ));
            }
            let oid = state.next_oid;
            let table_oid = oid + 1;
            let depends_on = crate::views::depends_on(state, &read, &functions);
            created = Some(oid);
            Ok(vec![
                CatalogOp::PutView(ViewDef {
                    oid,
                    schema: schema.clone(),
                    name: name.clone(),
                    sql: sql.clone(),
                    definition: definition.clone(),
                    depends_on: depends_on.into_iter().collect(),
                    continuous: None,
                    materialized: Some(MaterializedView {
                        table_oid,
                        populated: false,
                    }),
                    comment: None,
                }),
                CatalogOp::CreateTable(TableDef {
                    oid: table_oid,
                    schema: CHUNK_SCHEMA.to_string(),
                    name: format!("_materialized_view_{oid}"),
                    columns: columns.clone(),
                    ..TableDef::default()
                }),
            ])
        })
        .await?;
    if skipped {
        return Ok((
            tag(),
            vec![Notice::info(
                SqlState::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists, skipping"),
            )],
        ));
    }
    if let (Some(oid), true) = (created, with_data) {
        let rows = populate(session, oid, true).await?;
        return Ok((Outcome::Command(format!("SELECT {rows}")), vec![]));
    }
    Ok((tag(), vec![]))
}

/// `REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH [NO] DATA]`.
/// Every refresh lets readers go on (they see the old rows until the new
/// ones are committed), which is what CONCURRENTLY asks for.
async fn refresh(
    session: &SqlSession,
    name: &ObjectName,
    with_data: bool,
    concurrently: bool,
) -> Result<()> {
    let (schema, view) = object_name(name)?;
    let state = session.engine().catalog().snapshot();
    let oid = match state.view(&schema, &view) {
        Some(v) if v.materialized.as_ref().is_some_and(|m| !m.populated) && concurrently => {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "CONCURRENTLY cannot be used when the materialized view is not populated",
            ))
        }
        Some(v) if v.materialized.is_some() => v.oid,
        Some(v) if v.continuous.is_some() => {
            return Err(TemporaError::new(
                SqlState::WRONG_OBJECT_TYPE,
                format!("\"{view}\" is a continuous aggregate"),
            )
            .with_hint("Use refresh_continuous_aggregate to refresh a continuous aggregate."))
        }
        Some(_) => return Err(not_materialized(&view)),
        None if state.relation_exists(&schema, &view) => return Err(not_materialized(&view)),
        None => return Err(TemporaError::undefined_table(&view)),
    };
    populate(session, oid, with_data).await?;
    Ok(())
}

/// PostgreSQL answers REFRESH of another kind of relation with 0A000.
fn not_materialized(name: &str) -> TemporaError {
    TemporaError::new(
        SqlState::FEATURE_NOT_SUPPORTED,
        format!("\"{name}\" is not a materialized view"),
    )
}

/// Replaces the rows of materialized view `oid` by its query's (none
/// with `with_data` false); returns how many.
async fn populate(session: &SqlSession, oid: u32, with_data: bool) -> Result<u64> {
    let engine = session.engine();
    let view = engine
        .catalog()
        .snapshot()
        .views
        .get(&oid)
        .cloned()
        .ok_or_else(|| TemporaError::internal("materialized view dropped"))?;
    let storage = view
        .materialized
        .clone()
        .ok_or_else(|| TemporaError::internal("not a materialized view"))?;
    let table = engine
        .catalog()
        .snapshot()
        .table_by_oid(storage.table_oid)
        .cloned()
        .ok_or_else(|| TemporaError::internal("materialized view without its table"))?;
    let schema = Arc::new(table.arrow_schema());
    let mut rows = Vec::new();
    if with_data {
        for b in session.query_sql(&view.sql).await? {
            if b.num_rows() > 0 {
                rows.push(crate::insert::conform(b.columns(), &schema)?);
            }
        }
    }
    let count: usize = rows.iter().map(|b| b.num_rows()).sum();
    let guard = engine.lock_files().await;
    let table = engine
        .catalog()
        .snapshot()
        .table_by_oid(storage.table_oid)
        .cloned()
        .ok_or_else(|| TemporaError::undefined_table(&view.name))?;
    let mut changes = FileChanges {
        oid: table.oid,
        remove: table.files.iter().map(|f| (None, f.path.clone())).collect(),
        ..Default::default()
    };
    if count > 0 {
        let file = engine
            .write_table_file(
                &table,
                None,
                &rows,
                "refresh",
                tempora_storage::Layout::Merged,
            )
            .await?;
        changes.add.push((None, file));
    }
    let added: Vec<String> = changes.add.iter().map(|(_, f)| f.path.clone()).collect();
    let result = engine
        .commit_files_with(&guard, changes, |state| {
            let mut v = state
                .views
                .get(&oid)
                .cloned()
                .ok_or_else(|| TemporaError::undefined_table(&view.name))?;
            if let Some(m) = v.materialized.as_mut() {
                if m.populated == with_data {
                    return Ok(vec![]);
                }
                m.populated = with_data;
            }
            Ok(vec![CatalogOp::PutView(v)])
        })
        .await;
    if let Err(e) = result {
        engine.gc().retire(0, added);
        return Err(e);
    }
    Ok(count as u64)
}
