//! COMMENT ON TABLE / COLUMN / VIEW / MATERIALIZED VIEW / SEQUENCE:
//! descriptions kept in the catalog, shown by psql's `\d+`, `\dt+`,
//! `\dv+`, `\dm+`, `\ds+` through `pg_description`.

use datafusion::sql::sqlparser::ast::{CommentObject, ObjectName};
use tempora_catalog::CatalogOp;
use tempora_common::{Result, SqlState, TemporaError};

use crate::{Notice, Outcome, SqlSession};

pub(crate) async fn comment_on(
    session: &SqlSession,
    object_type: &CommentObject,
    object_name: &ObjectName,
    comment: Option<&str>,
) -> Result<(Outcome, Vec<Notice>)> {
    let (relation, column) = match object_type {
        CommentObject::Table => (object_name.clone(), None),
        CommentObject::Column => {
            let mut parts = object_name.0.clone();
            let column = parts.pop().filter(|_| !parts.is_empty()).ok_or_else(|| {
                TemporaError::syntax(format!("column name must be qualified: {object_name}"))
            })?;
            let column = match column {
                datafusion::sql::sqlparser::ast::ObjectNamePart::Identifier(i) => {
                    crate::ddl::ident_name(&i)
                }
                other => other.to_string(),
            };
            (ObjectName(parts), Some(column))
        }
        CommentObject::View | CommentObject::MaterializedView | CommentObject::Sequence => {
            return comment_on_relation(session, object_type, object_name, comment).await
        }
        other => return Err(TemporaError::not_supported(format!("COMMENT ON {other}"))),
    };
    let (schema, name) = crate::ddl::object_name(&relation)?;
    // `IS ''` removes a comment, as `IS NULL` does.
    let comment = comment.filter(|c| !c.is_empty()).map(str::to_string);
    session
        .engine()
        .catalog()
        .commit(|state| {
            let Some(current) = state.table(&schema, &name) else {
                if state.relation_exists(&schema, &name) {
                    return Err(match &column {
                        None => TemporaError::new(
                            SqlState::WRONG_OBJECT_TYPE,
                            format!("\"{name}\" is not a table"),
                        ),
                        Some(_) => TemporaError::not_supported(format!(
                            "COMMENT ON COLUMN of \"{name}\", which is not a table"
                        )),
                    });
                }
                return Err(TemporaError::undefined_table(&name));
            };
            let mut def = current.definition_only();
            match &column {
                None => def.comment = comment.clone(),
                Some(c) => {
                    let Some(col) = def.columns.iter_mut().find(|d| d.name == *c) else {
                        return Err(TemporaError::new(
                            SqlState::UNDEFINED_COLUMN,
                            format!("column \"{c}\" of relation \"{name}\" does not exist"),
                        ));
                    };
                    col.comment = comment.clone();
                }
            }
            Ok(vec![CatalogOp::AlterTable(Box::new(def))])
        })
        .await?;
    Ok((Outcome::Command("COMMENT".into()), vec![]))
}

/// COMMENT ON VIEW, MATERIALIZED VIEW or SEQUENCE.
async fn comment_on_relation(
    session: &SqlSession,
    object_type: &CommentObject,
    object_name: &ObjectName,
    comment: Option<&str>,
) -> Result<(Outcome, Vec<Notice>)> {
    let (schema, name) = crate::ddl::object_name(object_name)?;
    let comment = comment.filter(|c| !c.is_empty()).map(str::to_string);
    let wrong = |kind: &str| {
        TemporaError::new(
            SqlState::WRONG_OBJECT_TYPE,
            format!("\"{name}\" is not a {kind}"),
        )
    };
    let ops = |state: &tempora_catalog::CatalogState| -> Result<Vec<CatalogOp>> {
        match object_type {
            CommentObject::Sequence => {
                let Some(seq) = state.sequence(&schema, &name) else {
                    if state.relation_exists(&schema, &name) {
                        return Err(wrong("sequence"));
                    }
                    return Err(TemporaError::undefined_table(&name));
                };
                let mut seq = seq.clone();
                seq.comment = comment.clone();
                Ok(vec![CatalogOp::PutSequence(seq)])
            }
            _ => {
                let materialized = matches!(object_type, CommentObject::MaterializedView);
                let Some(view) = state.view(&schema, &name) else {
                    if state.relation_exists(&schema, &name) {
                        return Err(wrong(if materialized {
                            "materialized view"
                        } else {
                            "view"
                        }));
                    }
                    return Err(TemporaError::undefined_table(&name));
                };
                if view.is_materialized() != materialized {
                    return Err(wrong(if materialized {
                        "materialized view"
                    } else {
                        "view"
                    }));
                }
                let mut view = view.clone();
                view.comment = comment.clone();
                Ok(vec![CatalogOp::PutView(view)])
            }
        }
    };
    match object_type {
        // Sequences change under the engine's sequence lock.
        CommentObject::Sequence => session.engine().change_sequences(ops).await?,
        _ => {
            session.engine().catalog().commit(ops).await?;
        }
    }
    Ok((Outcome::Command("COMMENT".into()), vec![]))
}
