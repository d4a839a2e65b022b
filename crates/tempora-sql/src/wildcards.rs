//! Wildcards that repeat columns: `SELECT *, * FROM t`, `SELECT t.*, * FROM
//! t`. PostgreSQL returns the columns once per wildcard; DataFusion wants
//! each column once in a projection. A wildcard that repeats what an earlier
//! one of the same select list returns is replaced by its columns, each under
//! a hidden name that the client never sees (naming.rs). The columns are
//! found by planning `SELECT <wildcard> FROM ...` alone, with the CTEs in
//! scope; a select whose FROM cannot be planned alone (a correlated derived
//! table) is left as it is.
//!
//! ```text
//!   SELECT *, * FROM t   ──►   SELECT *, "t"."x" AS "x\u{1}w1", "t"."y" AS "y\u{1}w2" FROM t
//! ```

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement,
    VisitMut, VisitorMut, With,
};
use tempora_common::Result;

use crate::SqlSession;

/// What a wildcard returns: every relation's columns, or one relation's
/// (as the query spells its name, folded to lower case).
#[derive(PartialEq)]
enum Scope {
    All,
    Relation(String),
}

fn scope(item: &SelectItem) -> Option<Scope> {
    match item {
        SelectItem::Wildcard(_) => Some(Scope::All),
        SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), _) => {
            Some(Scope::Relation(n.to_string().to_lowercase()))
        }
        _ => None,
    }
}

/// Whether each item of a select list is a wildcard repeating an earlier
/// one's columns.
fn repeating(items: &[SelectItem]) -> Vec<bool> {
    let mut seen: Vec<Scope> = Vec::new();
    items
        .iter()
        .map(|item| {
            let Some(s) = scope(item) else {
                return false;
            };
            let repeats = seen
                .iter()
                .any(|p| *p == Scope::All || s == Scope::All || *p == s);
            seen.push(s);
            repeats
        })
        .collect()
}

/// Calls `f` on every select of a query body (each branch of a UNION).
fn for_each_select(body: &mut SetExpr, f: &mut impl FnMut(&mut Select)) {
    match body {
        SetExpr::Select(sel) => f(sel),
        SetExpr::SetOperation { left, right, .. } => {
            for_each_select(left, f);
            for_each_select(right, f);
        }
        _ => {}
    }
}

/// First pass: the probe (`WITH ... SELECT <wildcard> FROM ...`) of every
/// repeating wildcard, in the order the second pass meets them.
struct Probes {
    /// The WITH clauses of the queries being visited, outermost first.
    withs: Vec<Option<With>>,
    probes: Vec<String>,
}

impl Probes {
    /// The CTEs in scope as one WITH clause.
    fn with_text(&self) -> String {
        let mut merged: Option<With> = None;
        for w in self.withs.iter().flatten() {
            match &mut merged {
                None => merged = Some(w.clone()),
                Some(m) => {
                    m.recursive |= w.recursive;
                    m.cte_tables.extend(w.cte_tables.iter().cloned());
                }
            }
        }
        merged.map(|w| format!("{w} ")).unwrap_or_default()
    }
}

impl VisitorMut for Probes {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        self.withs.push(q.with.clone());
        let with = self.with_text();
        let mut probes = Vec::new();
        for_each_select(q.body.as_mut(), &mut |sel| {
            let from = sel
                .from
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            for (item, repeats) in sel.projection.iter().zip(repeating(&sel.projection)) {
                if repeats {
                    probes.push(format!("{with}SELECT {item} FROM {from}"));
                }
            }
        });
        self.probes.extend(probes);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
        self.withs.pop();
        ControlFlow::Continue(())
    }
}

/// A probe's columns: (qualifier parts, name); None when it did not plan.
type Columns = Option<Vec<(Vec<String>, String)>>;

/// Second pass: the repeating wildcards replaced by their columns.
struct Expand {
    columns: std::vec::IntoIter<Columns>,
    hidden: usize,
}

impl Expand {
    fn expand(&mut self, sel: &mut Select) {
        let repeats = repeating(&sel.projection);
        if !repeats.contains(&true) {
            return;
        }
        let mut items = Vec::with_capacity(sel.projection.len());
        for (item, repeats) in std::mem::take(&mut sel.projection).into_iter().zip(repeats) {
            let columns = if repeats { self.columns.next() } else { None };
            let Some(Some(columns)) = columns else {
                items.push(item);
                continue;
            };
            for (qualifier, name) in columns {
                let mut parts: Vec<Ident> = qualifier
                    .into_iter()
                    .map(|p| Ident::with_quote('"', p))
                    .collect();
                parts.push(Ident::with_quote('"', name.clone()));
                self.hidden += 1;
                items.push(SelectItem::ExprWithAlias {
                    expr: if parts.len() == 1 {
                        Expr::Identifier(parts.remove(0))
                    } else {
                        Expr::CompoundIdentifier(parts)
                    },
                    alias: Ident::with_quote(
                        '"',
                        crate::naming::hidden_name(&name, &format!("w{}", self.hidden)),
                    ),
                });
            }
        }
        sel.projection = items;
    }
}

impl VisitorMut for Expand {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        for_each_select(q.body.as_mut(), &mut |sel| self.expand(sel));
        ControlFlow::Continue(())
    }
}

/// Replaces the wildcards of the statement's select lists that repeat an
/// earlier wildcard's columns by those columns.
pub(crate) async fn expand_repeated(session: &SqlSession, stmt: &mut Statement) -> Result<()> {
    let mut probes = Probes {
        withs: Vec::new(),
        probes: Vec::new(),
    };
    let _ = stmt.visit(&mut probes);
    if probes.probes.is_empty() {
        return Ok(());
    }
    let mut columns: Vec<Columns> = Vec::with_capacity(probes.probes.len());
    for probe in &probes.probes {
        let plan = match crate::parse(probe) {
            Ok(mut stmts) if stmts.len() == 1 => {
                session.plan(crate::rewrite_query(stmts.remove(0))).await
            }
            Ok(_) | Err(_) => {
                columns.push(None);
                continue;
            }
        };
        columns.push(plan.ok().map(|plan| {
            plan.schema()
                .iter()
                .map(|(q, f)| (q.map(|q| q.to_vec()).unwrap_or_default(), f.name().clone()))
                .collect()
        }));
    }
    let _ = stmt.visit(&mut Expand {
        columns: columns.into_iter(),
        hidden: 0,
    });
    Ok(())
}
