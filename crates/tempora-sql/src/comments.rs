//! COMMENT ON TABLE / COLUMN: descriptions kept in the catalog, shown by
//! psql's `\d+` and `\dt+` through `pg_description`.

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
                if state.view(&schema, &name).is_some() {
                    return Err(TemporaError::new(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        format!("comments on views are not supported (\"{name}\" is a view)"),
                    ));
                }
                return Err(TemporaError::undefined_table(&name));
            };
            let mut def = current.clone();
            def.chunks.clear();
            def.files.clear();
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
