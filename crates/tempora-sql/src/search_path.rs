//! `search_path`: a relation named without a schema is the one in the
//! first schema of the path that holds one of that name, and CREATE
//! without a schema creates in the first schema of the path that exists,
//! as in PostgreSQL. The planner resolves bare names in `public`, so a
//! name found in another schema is written schema-qualified before
//! planning, as is a relation named as text by a function's first
//! argument (`create_hypertable('t', ...)`, `nextval('s')`).

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, ObjectNamePart,
    Query, Statement, TableFactor, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use tempora_catalog::CatalogState;

use crate::ddl::ident_name;

/// The schemas of the session's path that exist (pg_catalog aside).
pub(crate) fn existing(state: &CatalogState, path: &[String]) -> Vec<String> {
    path.iter()
        .filter(|s| s.as_str() != "pg_catalog" && state.schema_exists(s))
        .cloned()
        .collect()
}

/// Whether the path is the default one as far as relations go: `public`
/// first among the schemas that exist (nothing to rewrite).
fn is_default(path: &[String]) -> bool {
    path.first().is_none_or(|s| s == tempora_query::PUBLIC)
}

/// Functions whose first argument names a relation as text (TimescaleDB's
/// `create_hypertable('t', ...)`, the sequence functions' `nextval('s')`).
const RELATION_ARGUMENT: &[&str] = &[
    "create_hypertable",
    "add_dimension",
    "set_chunk_time_interval",
    "set_number_partitions",
    "show_chunks",
    "drop_chunks",
    "add_compression_policy",
    "remove_compression_policy",
    "add_columnstore_policy",
    "remove_columnstore_policy",
    "add_retention_policy",
    "remove_retention_policy",
    "add_continuous_aggregate_policy",
    "remove_continuous_aggregate_policy",
    "hypertable_size",
    "hypertable_detailed_size",
    "hypertable_index_size",
    "hypertable_compression_stats",
    "hypertable_columnstore_stats",
    "chunk_compression_stats",
    "chunk_columnstore_stats",
    "chunks_detailed_size",
    "approximate_row_count",
    "nextval",
    "currval",
    "setval",
    "pg_get_serial_sequence",
];

struct Resolver<'a> {
    state: &'a CatalogState,
    path: &'a [String],
    /// Names of common table expressions, which a bare name may mean.
    ctes: HashSet<String>,
}

impl Resolver<'_> {
    /// A bare relation name given as the first argument of a function of
    /// [`RELATION_ARGUMENT`], qualified when found outside `public`.
    fn qualify_argument(&self, function: &ObjectName, args: &mut [FunctionArg]) {
        if !RELATION_ARGUMENT.contains(&crate::function_name(function).as_str()) {
            return;
        }
        let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(text),
            ..
        })))) = args.first_mut()
        else {
            return;
        };
        // A bare, unquoted name: PostgreSQL folds it to lower case.
        if text.contains('.') || text.contains('"') {
            return;
        }
        let bare = text.to_lowercase();
        if let Some(schema) = self.schema_of(&bare) {
            *text = format!("\"{}\".{bare}", schema.replace('"', "\"\""));
        }
    }

    /// The schema of the path holding `name`, if it is not `public`.
    fn schema_of(&self, name: &str) -> Option<&String> {
        self.path
            .iter()
            .find(|s| self.state.relation_exists(s, name))
            .filter(|s| s.as_str() != tempora_query::PUBLIC)
    }
}

impl VisitorMut for Resolver<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            if let FunctionArguments::List(list) = &mut f.args {
                self.qualify_argument(&f.name, &mut list.args);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        // `FROM show_chunks('t')`.
        if let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = factor
        {
            self.qualify_argument(name, &mut args.args);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.insert(ident_name(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<()> {
        let [ObjectNamePart::Identifier(i)] = name.0.as_slice() else {
            return ControlFlow::Continue(());
        };
        let bare = ident_name(i);
        if self.ctes.contains(&bare) {
            return ControlFlow::Continue(());
        }
        if let Some(schema) = self.schema_of(&bare) {
            name.0.insert(
                0,
                ObjectNamePart::Identifier(Ident::with_quote('"', schema)),
            );
        }
        ControlFlow::Continue(())
    }
}

/// Qualifies `stmt`'s bare relation names by the session's `search_path`.
pub(crate) fn resolve(stmt: &mut Statement, state: &CatalogState, path: &[String]) {
    let path = existing(state, path);
    if is_default(&path) {
        return;
    }
    // CREATE without a schema creates in the first schema of the path.
    let created: Option<&mut ObjectName> = match stmt {
        Statement::CreateTable(ct) => Some(&mut ct.name),
        Statement::CreateView(cv) => Some(&mut cv.name),
        _ => None,
    };
    if let Some(name) = created {
        if name.0.len() == 1 {
            name.0.insert(
                0,
                ObjectNamePart::Identifier(Ident::with_quote('"', path[0].as_str())),
            );
        }
    }
    let mut resolver = Resolver {
        state,
        path: &path,
        ctes: HashSet::new(),
    };
    let _ = stmt.visit(&mut resolver);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempora_catalog::{CatalogOp, TableDef};

    fn state() -> CatalogState {
        let mut s = CatalogState::default();
        s.apply(&CatalogOp::CreateSchema { name: "app".into() })
            .unwrap();
        for (oid, schema, name) in [
            (20_000, "app", "t"),
            (20_001, "public", "t"),
            (20_002, "public", "p"),
        ] {
            s.apply(&CatalogOp::CreateTable(TableDef {
                oid,
                schema: schema.into(),
                name: name.into(),
                ..TableDef::default()
            }))
            .unwrap();
        }
        s
    }

    fn resolved(sql: &str, path: &[&str]) -> String {
        let mut stmt = crate::parse(sql).unwrap().remove(0);
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        resolve(&mut stmt, &state(), &path);
        stmt.to_string()
    }

    #[test]
    fn names_resolve_along_the_path() {
        assert_eq!(
            resolved("SELECT * FROM t JOIN p ON true", &["app", "public"]),
            "SELECT * FROM \"app\".t JOIN p ON true"
        );
        assert_eq!(
            resolved("SELECT * FROM t", &["public", "app"]),
            "SELECT * FROM t"
        );
        assert_eq!(
            resolved("WITH t AS (SELECT 1) SELECT * FROM t", &["app"]),
            "WITH t AS (SELECT 1) SELECT * FROM t"
        );
        assert_eq!(
            resolved("CREATE TABLE n (a INT)", &["nope", "app", "public"]),
            "CREATE TABLE \"app\".n (a INT)"
        );
        assert_eq!(
            resolved("INSERT INTO t VALUES (1)", &["app"]),
            "INSERT INTO \"app\".t VALUES (1)"
        );
        assert_eq!(
            resolved(
                "SELECT create_hypertable('t', 'time'), nextval('p')",
                &["app", "public"]
            ),
            "SELECT create_hypertable('\"app\".t', 'time'), nextval('p')"
        );
    }
}
