//! `CREATE SCHEMA` and `DROP SCHEMA [CASCADE]`: namespaces for tables and
//! views beside `public`, named with schema-qualified names.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName, SchemaName};
use tempora_catalog::{CatalogOp, PUBLIC_SCHEMA};
use tempora_common::{Result, SqlState, TemporaError};

use crate::ddl::{ident_name, object_name};
use crate::{Notice, Outcome, SqlSession};

/// Schemas the system keeps: they exist, and cannot be made or dropped.
const SYSTEM_SCHEMAS: &[&str] = &[
    "pg_catalog",
    "information_schema",
    "timescaledb_information",
    "timescaledb_experimental",
    "_timescaledb_internal",
    "_timescaledb_catalog",
    "_timescaledb_functions",
];

fn schema_of(name: &SchemaName) -> Result<String> {
    let plain = |n: &ObjectName| -> Result<String> {
        match n.0.as_slice() {
            [datafusion::sql::sqlparser::ast::ObjectNamePart::Identifier(i)] => Ok(ident_name(i)),
            _ => Err(TemporaError::syntax(format!(
                "improper qualified name (too many dotted names): {n}"
            ))),
        }
    };
    match name {
        SchemaName::Simple(n) | SchemaName::NamedAuthorization(n, _) => plain(n),
        SchemaName::UnnamedAuthorization(role) => Ok(ident_name(role)),
    }
}

fn check_role(name: &SchemaName) -> Result<()> {
    let role: Option<&Ident> = match name {
        SchemaName::NamedAuthorization(_, r) | SchemaName::UnnamedAuthorization(r) => Some(r),
        SchemaName::Simple(_) => None,
    };
    match role.map(ident_name) {
        Some(r) if r != "postgres" => Err(TemporaError::new(
            SqlState::UNDEFINED_OBJECT,
            format!("role \"{r}\" does not exist"),
        )),
        _ => Ok(()),
    }
}

pub(crate) async fn create_schema(
    session: &SqlSession,
    name: &SchemaName,
    if_not_exists: bool,
) -> Result<(Outcome, Vec<Notice>)> {
    let schema = schema_of(name)?;
    check_role(name)?;
    if schema.starts_with("pg_") {
        return Err(TemporaError::new(
            SqlState::RESERVED_NAME,
            format!("unacceptable schema name \"{schema}\""),
        )
        .with_detail("The prefix \"pg_\" is reserved for system schemas."));
    }
    let mut notices = vec![];
    session
        .engine()
        .catalog()
        .commit(|state| {
            notices.clear();
            if state.schema_exists(&schema) || SYSTEM_SCHEMAS.contains(&schema.as_str()) {
                if if_not_exists {
                    notices.push(Notice::info(
                        SqlState::DUPLICATE_SCHEMA,
                        format!("schema \"{schema}\" already exists, skipping"),
                    ));
                    return Ok(vec![]);
                }
                return Err(TemporaError::new(
                    SqlState::DUPLICATE_SCHEMA,
                    format!("schema \"{schema}\" already exists"),
                ));
            }
            Ok(vec![CatalogOp::CreateSchema {
                name: schema.clone(),
            }])
        })
        .await?;
    Ok((Outcome::Command("CREATE SCHEMA".into()), notices))
}

pub(crate) async fn drop_schemas(
    session: &SqlSession,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> Result<(Outcome, Vec<Notice>)> {
    let mut schemas = Vec::new();
    for n in names {
        // A one-part name: object_name reads it as public.<name>.
        let (_, schema) = object_name(n)?;
        schemas.push(schema);
    }
    let mut notices = vec![];
    let mut dropped: Vec<(u32, Vec<String>)> = vec![];
    session
        .engine()
        .catalog()
        .commit(|state| {
            notices.clear();
            dropped.clear();
            let mut ops = Vec::new();
            let mut cascaded = Vec::new();
            for schema in &schemas {
                if schema == PUBLIC_SCHEMA || SYSTEM_SCHEMAS.contains(&schema.as_str()) {
                    return Err(TemporaError::not_supported(format!(
                        "dropping schema \"{schema}\""
                    )));
                }
                if !state.schema_exists(schema) {
                    if if_exists {
                        notices.push(Notice::info(
                            SqlState::SUCCESSFUL_COMPLETION,
                            format!("schema \"{schema}\" does not exist, skipping"),
                        ));
                        continue;
                    }
                    return Err(TemporaError::new(
                        SqlState::INVALID_SCHEMA_NAME,
                        format!("schema \"{schema}\" does not exist"),
                    ));
                }
                let views: Vec<_> = state
                    .views
                    .values()
                    .filter(|v| &v.schema == schema)
                    .collect();
                let tables: Vec<_> = state
                    .tables
                    .values()
                    .filter(|t| &t.schema == schema)
                    .collect();
                let functions: Vec<_> = state
                    .functions
                    .values()
                    .filter(|f| &f.schema == schema)
                    .collect();
                let first = views
                    .first()
                    .map(|v| format!("view {schema}.{}", v.name))
                    .or_else(|| tables.first().map(|t| format!("table {schema}.{}", t.name)))
                    .or_else(|| {
                        functions
                            .first()
                            .map(|f| format!("function {schema}.{}", f.signature()))
                    });
                if let (Some(first), false) = (&first, cascade) {
                    return Err(TemporaError::new(
                        SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                        format!("cannot drop schema {schema} because other objects depend on it"),
                    )
                    .with_detail(format!("{first} depends on schema {schema}"))
                    .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                }
                // Views elsewhere that read what goes.
                let going: Vec<(u32, String, &str)> = tables
                    .iter()
                    .map(|t| (t.oid, t.name.clone(), "table"))
                    .chain(views.iter().map(|v| (v.oid, v.name.clone(), "view")))
                    .chain(functions.iter().map(|f| (f.oid, f.signature(), "function")))
                    .collect();
                let others = crate::views::dependent_views(state, &going, true, &mut cascaded)?;
                for v in &views {
                    cascaded.push(format!("view {schema}.{}", v.name));
                    ops.extend(crate::views::drop_view_ops(state, v.oid, &mut dropped));
                }
                for oid in others
                    .into_iter()
                    .filter(|o| !views.iter().any(|v| v.oid == *o))
                {
                    ops.extend(crate::views::drop_view_ops(state, oid, &mut dropped));
                }
                for t in &tables {
                    cascaded.push(format!("table {schema}.{}", t.name));
                    // A hypertable's chunks are tables of their own.
                    cascaded.extend(crate::caggs::chunk_tables(t));
                    dropped.push((t.oid, t.all_files().map(|f| f.path.clone()).collect()));
                    ops.push(CatalogOp::DropTable { oid: t.oid });
                }
                for f in &functions {
                    cascaded.push(format!("function {schema}.{}", f.signature()));
                    ops.push(CatalogOp::DropFunction { oid: f.oid });
                }
                ops.push(CatalogOp::DropSchema {
                    name: schema.clone(),
                });
            }
            notices.extend(Notice::cascade(&cascaded));
            Ok(ops)
        })
        .await?;
    session.drop_tables(dropped);
    Ok((Outcome::Command("DROP SCHEMA".into()), notices))
}
