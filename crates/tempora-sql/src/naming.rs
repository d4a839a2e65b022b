//! PostgreSQL's names for unaliased result columns: `count(*)` is `count`,
//! `avg(temperature)` is `avg`, an expression without a name is `?column?`.
//! DataFusion would name them after the whole expression.

use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, Select, SelectItem, SetExpr, Statement};

/// The column name PostgreSQL gives an unaliased select-list expression, or
/// None when the expression keeps its own (column references).
fn pg_name(e: &Expr) -> Option<String> {
    Some(match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => return None,
        Expr::Function(f) => match crate::function_name(&f.name).as_str() {
            // Operators rewritten as calls (calls.rs) keep an operator's name.
            "interval_mul" | "interval_div" => "?column?".into(),
            name => name.to_string(),
        },
        Expr::Nested(inner) => return pg_name(inner).or_else(|| column_of(inner)),
        Expr::Cast {
            expr, data_type, ..
        } => match column_of(expr) {
            Some(c) => c,
            None => match pg_name(expr) {
                // A name a cast gave is weaker than this cast's:
                // `'...'::timestamptz::date` is `date`.
                Some(n) if n != "?column?" && !named_by_cast(expr) => n,
                _ => cast_type_name(&data_type.to_string()),
            },
        },
        Expr::TypedString(t) => cast_type_name(&t.data_type.to_string()),
        Expr::Case { .. } => "case".into(),
        Expr::AtTimeZone { .. } => "timezone".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Exists { .. } => "exists".into(),
        // A scalar subquery takes its one column's name.
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(sel) => match sel.projection.as_slice() {
                [SelectItem::ExprWithAlias { alias, .. }] => alias.value.clone(),
                [SelectItem::UnnamedExpr(e)] => column_of(e)
                    .or_else(|| pg_name(e))
                    .unwrap_or_else(|| "?column?".into()),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        Expr::Array(_) => "array".into(),
        Expr::Interval(_) => "interval".into(),
        _ => "?column?".into(),
    })
}

/// Whether an expression's name comes from a type (a cast, a typed
/// literal), which PostgreSQL lets an outer cast's type replace.
fn named_by_cast(e: &Expr) -> bool {
    match e {
        Expr::Cast { expr, .. } => {
            column_of(expr).is_none()
                && (named_by_cast(expr) || pg_name(expr).is_none_or(|n| n == "?column?"))
        }
        Expr::TypedString(_) | Expr::Interval(_) => true,
        Expr::Nested(inner) => named_by_cast(inner),
        _ => false,
    }
}

fn column_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(crate::ddl::ident_name(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(crate::ddl::ident_name),
        _ => None,
    }
}

fn cast_type_name(t: &str) -> String {
    let t = t.to_lowercase();
    let base = t.split('(').next().unwrap_or(&t).trim();
    match base {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "real" | "float4" => "float4",
        "double precision" | "float8" | "float" => "float8",
        "boolean" | "bool" => "bool",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "character varying" | "varchar" => "varchar",
        "decimal" | "numeric" => "numeric",
        other => other,
    }
    .to_string()
}

/// Marks the start of a hidden suffix in a generated column alias.
const HIDDEN: char = '\u{1}';

/// `name` with a hidden suffix `tag`: a column named so shows as `name`.
pub(crate) fn hidden_name(name: &str, tag: &str) -> String {
    format!("{name}{HIDDEN}{tag}")
}

/// A line of text (an EXPLAIN line) with the hidden suffixes of the names
/// in it removed: `x@0 as x\u{1}1` reads `x@0 as x`.
pub(crate) fn without_hidden_suffixes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == HIDDEN {
            while chars.next_if(|c| c.is_ascii_alphanumeric()).is_some() {}
        } else {
            out.push(c);
        }
    }
    out
}

/// The name a client sees for a result column.
pub fn output_name(name: &str) -> &str {
    name.split(HIDDEN).next().unwrap_or(name)
}

/// What a select item is called, and how it got the name.
enum ItemName {
    /// A column reference or an alias: the name the query asked for.
    Explicit(String),
    /// An unaliased expression: the name PostgreSQL makes up for it.
    Computed(String),
    /// A wildcard, or an item whose name nobody can repeat.
    Other,
}

/// The relations a select's wildcards cover: `*` all of them, `t.*` those
/// named `t` (as the query spells the qualifier).
struct Wildcards {
    all: bool,
    qualifiers: Vec<String>,
}

impl Wildcards {
    fn of(items: &[SelectItem]) -> Self {
        use datafusion::sql::sqlparser::ast::SelectItemQualifiedWildcardKind;
        let mut w = Wildcards {
            all: false,
            qualifiers: vec![],
        };
        for item in items {
            match item {
                SelectItem::Wildcard(_) => w.all = true,
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => w.qualifiers.push(n.to_string().to_lowercase()),
                _ => {}
            }
        }
        w
    }

    /// Whether a column reference names a column a wildcard also returns.
    fn covers(&self, e: &Expr) -> bool {
        match e {
            // An unqualified column may be one `t.*` returns too.
            Expr::Identifier(_) => self.all || !self.qualifiers.is_empty(),
            Expr::CompoundIdentifier(parts) if parts.len() > 1 => {
                self.all || {
                    let qualifier = parts[..parts.len() - 1]
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(".")
                        .to_lowercase();
                    self.qualifiers.contains(&qualifier)
                }
            }
            _ => false,
        }
    }
}

/// Gives the items of a select list names DataFusion accepts. PostgreSQL
/// lets a name repeat (`SELECT x, x`, `SELECT avg(a), avg(b)`, `SELECT oid,
/// *`); DataFusion wants each once. A repeated name gets a hidden suffix
/// that `output_name` strips from the result: every unaliased expression
/// sharing a name, and every later column reference or alias repeating an
/// earlier one (the first keeps its name, so ORDER BY and outer queries
/// find it), as do column references a wildcard of the same select also
/// returns. With `top`, unaliased expressions also get PostgreSQL's names;
/// in a nested select they keep DataFusion's.
fn name_select(sel: &mut Select, top: bool) {
    let names: Vec<ItemName> = sel
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => match column_of(e) {
                Some(c) => ItemName::Explicit(c),
                None if top => pg_name(e).map_or(ItemName::Other, ItemName::Computed),
                None => ItemName::Other,
            },
            SelectItem::ExprWithAlias { alias, .. } => {
                ItemName::Explicit(crate::ddl::ident_name(alias))
            }
            _ => ItemName::Other,
        })
        .collect();
    let computed = |name: &str| {
        names
            .iter()
            .filter(|n| matches!(n, ItemName::Computed(c) if c == name))
            .count()
    };
    let wildcards = Wildcards::of(&sel.projection);
    let mut explicit_seen: Vec<&str> = vec![];
    // Unnamed expressions keeping DataFusion's names (a nested select, an
    // EXPLAIN): the same expression twice would be the same name twice.
    let mut unnamed_seen: Vec<String> = vec![];
    let mut seq = 0usize;
    let mut hidden = |name: &str| {
        seq += 1;
        Ident::with_quote('"', format!("{name}{HIDDEN}{seq}"))
    };
    for (item, name) in sel.projection.iter_mut().zip(&names) {
        match name {
            ItemName::Computed(name) => {
                if let SelectItem::UnnamedExpr(e) = item {
                    let alias = if computed(name) > 1
                        || names
                            .iter()
                            .any(|n| matches!(n, ItemName::Explicit(x) if x == name))
                    {
                        hidden(name)
                    } else {
                        Ident::with_quote('"', name.clone())
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias,
                    };
                }
            }
            ItemName::Explicit(name) => {
                let repeated = explicit_seen.contains(&name.as_str());
                explicit_seen.push(name);
                match item {
                    SelectItem::UnnamedExpr(e) if repeated || wildcards.covers(e) => {
                        *item = SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: hidden(name),
                        };
                    }
                    SelectItem::ExprWithAlias { alias, .. } if repeated => {
                        *alias = hidden(name);
                    }
                    _ => {}
                }
            }
            ItemName::Other => {
                if let SelectItem::UnnamedExpr(e) = item {
                    let text = e.to_string();
                    if unnamed_seen.contains(&text) {
                        *item = SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: hidden("?column?"),
                        };
                    } else {
                        unnamed_seen.push(text);
                    }
                }
            }
        }
    }
}

/// Calls `f` on the select a query's rows come from, or for a UNION /
/// INTERSECT / EXCEPT on every branch's, leftmost (which names the result)
/// first; `f`'s second argument says whether it is the leftmost.
fn for_each_select(body: &mut SetExpr, leftmost: bool, f: &mut impl FnMut(&mut Select, bool)) {
    match body {
        SetExpr::Select(sel) => f(sel, leftmost),
        SetExpr::SetOperation { left, right, .. } => {
            for_each_select(left, leftmost, f);
            for_each_select(right, false, f);
        }
        SetExpr::Query(q) => for_each_select(q.body.as_mut(), leftmost, f),
        _ => {}
    }
}

/// Integer literals of a query (outside LIMIT/OFFSET and positional GROUP BY /
/// ORDER BY) are `integer` (int4) when they fit, as in PostgreSQL; DataFusion
/// would make them bigint and clients decoding int4 fail.
fn int4_literals(query: &mut Query) {
    use datafusion::sql::sqlparser::ast::{CastKind, DataType, Value, VisitMut, VisitorMut};
    use std::ops::ControlFlow;
    struct Int4;
    impl VisitorMut for Int4 {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Value(v) = e {
                if let Value::Number(n, false) = &v.value {
                    if n.parse::<i32>().is_ok() {
                        *e = Expr::Cast {
                            kind: CastKind::DoubleColon,
                            expr: Box::new(e.clone()),
                            data_type: DataType::Int(None),
                            format: None,
                            array: false,
                        };
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    // LIMIT/OFFSET keep DataFusion's bigint; positions in GROUP BY 1 /
    // ORDER BY 1 stay positions.
    let limit = query.limit_clause.take();
    let _ = query.body.visit(&mut Int4);
    // GROUP BY and ORDER BY keys are cast as the select list's copies of
    // them are (`SELECT x + 1 ... GROUP BY x + 1`), but for bare positions.
    if let SetExpr::Select(sel) = query.body.as_mut() {
        if let datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(keys, _) =
            &mut sel.group_by
        {
            keys.iter_mut().for_each(uncast);
        }
    }
    if let Some(order) = &mut query.order_by {
        let _ = order.visit(&mut Int4);
        if let datafusion::sql::sqlparser::ast::OrderByKind::Expressions(keys) = &mut order.kind {
            keys.iter_mut().for_each(|k| uncast(&mut k.expr));
        }
    }
    // Window frame offsets (`ROWS BETWEEN 1 PRECEDING ...`) must stay plain
    // literals for DataFusion.
    let _ = query.body.visit(&mut FrameOffsets);
    // Subqueries and CTEs have positions too.
    let _ = query.body.visit(&mut NestedPositions);
    query.limit_clause = limit;
}

/// Undoes [`int4_literals`]' casts where a nested query's integers are
/// positions or counts: GROUP BY 1, ORDER BY 1, LIMIT and OFFSET.
struct NestedPositions;

fn uncast(e: &mut Expr) {
    if let Expr::Cast {
        kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
        expr,
        data_type: datafusion::sql::sqlparser::ast::DataType::Int(None),
        ..
    } = e
    {
        if matches!(expr.as_ref(), Expr::Value(_)) {
            let inner = std::mem::replace(
                expr.as_mut(),
                Expr::Value(datafusion::sql::sqlparser::ast::Value::Null.into()),
            );
            *e = inner;
        }
    }
}

impl datafusion::sql::sqlparser::ast::VisitorMut for NestedPositions {
    type Break = ();
    fn post_visit_query(&mut self, q: &mut Query) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{GroupByExpr, LimitClause, OrderByKind};
        if let SetExpr::Select(sel) = q.body.as_mut() {
            if let GroupByExpr::Expressions(exprs, _) = &mut sel.group_by {
                exprs.iter_mut().for_each(uncast);
            }
        }
        if let Some(order) = &mut q.order_by {
            if let OrderByKind::Expressions(exprs) = &mut order.kind {
                exprs.iter_mut().for_each(|o| uncast(&mut o.expr));
            }
        }
        match &mut q.limit_clause {
            Some(LimitClause::LimitOffset { limit, offset, .. }) => {
                if let Some(l) = limit {
                    uncast(l);
                }
                if let Some(o) = offset {
                    uncast(&mut o.value);
                }
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                uncast(offset);
                uncast(limit);
            }
            None => {}
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Undoes [`int4_literals`]' casts on window frame offsets.
struct FrameOffsets;

impl datafusion::sql::sqlparser::ast::VisitorMut for FrameOffsets {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{WindowFrameBound, WindowType};
        if let Expr::Function(f) = e {
            if let Some(WindowType::WindowSpec(spec)) = &mut f.over {
                if let Some(frame) = &mut spec.window_frame {
                    let bounds =
                        std::iter::once(&mut frame.start_bound).chain(frame.end_bound.as_mut());
                    for b in bounds {
                        if let WindowFrameBound::Preceding(Some(x))
                        | WindowFrameBound::Following(Some(x)) = b
                        {
                            if let Expr::Cast { expr, .. } = x.as_mut() {
                                let inner = std::mem::replace(
                                    expr.as_mut(),
                                    Expr::Value(
                                        datafusion::sql::sqlparser::ast::Value::Null.into(),
                                    ),
                                );
                                **x = inner;
                            }
                        }
                    }
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// PostgreSQL's 42702 for `ORDER BY x` where two result columns are named
/// `x` and hold different expressions (`SELECT x, x::text ... ORDER BY x`,
/// `SELECT 1 AS a, 2 AS a ORDER BY a`); DataFusion would take the first.
pub fn ambiguous_order_by(stmt: &Statement) -> tempora_common::Result<()> {
    use datafusion::sql::sqlparser::ast::{OrderByKind, Visit, Visitor};
    struct Check(Option<String>);
    impl Visitor for Check {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> std::ops::ControlFlow<()> {
            let (SetExpr::Select(sel), Some(order)) = (q.body.as_ref(), &q.order_by) else {
                return std::ops::ControlFlow::Continue(());
            };
            let OrderByKind::Expressions(keys) = &order.kind else {
                return std::ops::ControlFlow::Continue(());
            };
            for key in keys {
                let Expr::Identifier(id) = &key.expr else {
                    continue;
                };
                let name = crate::ddl::ident_name(id);
                let mut exprs = sel.projection.iter().filter_map(|item| match item {
                    SelectItem::ExprWithAlias { expr, alias }
                        if crate::ddl::ident_name(alias) == name =>
                    {
                        Some(expr.to_string())
                    }
                    SelectItem::UnnamedExpr(e)
                        if column_of(e).or_else(|| pg_name(e)).as_deref()
                            == Some(name.as_str()) =>
                    {
                        Some(e.to_string())
                    }
                    _ => None,
                });
                if let Some(first) = exprs.next() {
                    if exprs.any(|e| e != first) {
                        self.0 = Some(name);
                        return std::ops::ControlFlow::Break(());
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut check = Check(None);
    let _ = stmt.visit(&mut check);
    match check.0 {
        Some(name) => Err(tempora_common::TemporaError::new(
            tempora_common::SqlState::AMBIGUOUS_COLUMN,
            format!("ORDER BY \"{name}\" is ambiguous"),
        )),
        None => Ok(()),
    }
}

/// Names the result columns of a top-level query as PostgreSQL does.
pub fn apply(stmt: &mut Statement) {
    match stmt {
        Statement::Query(q) => {
            name_queries(q, true);
            int4_literals(q);
        }
        // The plan of what would run, under DataFusion's names: only what
        // DataFusion would refuse is renamed.
        Statement::Explain { statement, .. } => {
            if let Statement::Query(q) = statement.as_mut() {
                name_queries(q, false);
            }
        }
        _ => {}
    }
}

/// The rows of `INSERT ... SELECT` need unique column names too (`SELECT
/// t, 1, 1`); their names are not shown.
pub fn apply_to_insert_source(stmt: &mut Statement) {
    if let Statement::Insert(i) = stmt {
        if let Some(q) = i.source.as_mut() {
            name_queries(q, true);
        }
    }
}

/// Runs [`name_select`] and [`distinct_cast_names`] on a query and every
/// query nested in it (CTEs, derived tables, subqueries); `top` when the
/// query's columns are a result's, named as PostgreSQL names them.
fn name_queries(q: &mut Query, top: bool) {
    use datafusion::sql::sqlparser::ast::VisitMut;
    let _ = q.visit(&mut Names { top_done: !top });
}

struct Names {
    top_done: bool,
}

impl datafusion::sql::sqlparser::ast::VisitorMut for Names {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut Query) -> std::ops::ControlFlow<()> {
        let top = !std::mem::replace(&mut self.top_done, true);
        match q.body.as_mut() {
            SetExpr::Select(sel) => {
                name_select(sel, top);
                distinct_cast_names(sel, q.order_by.as_mut());
            }
            body => for_each_select(body, true, &mut |sel, leftmost| {
                name_select(sel, top && leftmost);
                distinct_cast_names(sel, None);
            }),
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Keeps expressions that differ only by casts apart. DataFusion names an
/// expression without its casts, so `SELECT avg(x), avg(x::float8)` plans
/// two aggregates both called `avg(x)` and fails, as would `GROUP BY x,
/// x::text` or two such window functions; PostgreSQL computes both. For
/// each such group of calls (and GROUP BY keys), all but the first (one
/// without casts when there is one) get the arguments holding a cast
/// wrapped in `tempora_named(arg, n)`, an identity whose name carries `n`
/// and which the optimizer removes (tempora-query/expr_names.rs). A key of
/// GROUP BY that is no call is wrapped whole. Every occurrence in the select
/// list, GROUP BY, HAVING, QUALIFY and ORDER BY is wrapped alike, so they
/// still match each other.
fn distinct_cast_names(
    sel: &mut Select,
    order_by: Option<&mut datafusion::sql::sqlparser::ast::OrderBy>,
) {
    use datafusion::sql::sqlparser::ast::{GroupByExpr, Visit, VisitMut};
    use std::collections::HashMap;

    // Each call and GROUP BY key: (key without casts, text with them).
    let mut seen = Calls::default();
    for item in &sel.projection {
        let _ = Visit::visit(item, &mut seen);
    }
    let _ = Visit::visit(&sel.group_by, &mut seen);
    if let GroupByExpr::Expressions(keys, _) = &sel.group_by {
        for k in keys {
            seen.add(k);
        }
    }
    let _ = Visit::visit(&sel.having, &mut seen);
    let _ = Visit::visit(&sel.qualify, &mut seen);
    if let Some(o) = order_by.as_deref() {
        let _ = Visit::visit(o, &mut seen);
    }
    let mut groups: HashMap<&str, Vec<&str>> = HashMap::new();
    for (key, full) in &seen.0 {
        let texts = groups.entry(key.as_str()).or_default();
        if !texts.contains(&full.as_str()) {
            texts.push(full.as_str());
        }
    }
    let mut tags: HashMap<String, usize> = HashMap::new();
    for (key, mut texts) in groups {
        if texts.len() < 2 {
            continue;
        }
        // The variant without casts keeps its expression as written.
        if let Some(i) = texts.iter().position(|t| t.to_lowercase() == key) {
            let plain = texts.remove(i);
            texts.insert(0, plain);
        }
        for (n, text) in texts.iter().enumerate().skip(1) {
            tags.insert((*text).to_string(), n);
        }
    }
    if tags.is_empty() {
        return;
    }
    let mut wrap = WrapTagged { tags: &tags };
    for item in &mut sel.projection {
        let _ = VisitMut::visit(item, &mut wrap);
    }
    let _ = VisitMut::visit(&mut sel.group_by, &mut wrap);
    let _ = VisitMut::visit(&mut sel.having, &mut wrap);
    let _ = VisitMut::visit(&mut sel.qualify, &mut wrap);
    if let Some(o) = order_by {
        let _ = VisitMut::visit(o, &mut wrap);
    }
}

/// Calls found in a select, as (key, text) pairs: see [`cast_free_key`].
#[derive(Default)]
struct Calls(Vec<(String, String)>);

impl Calls {
    fn add(&mut self, e: &Expr) {
        self.0.push((cast_free_key(e), as_written(e)));
    }
}

impl datafusion::sql::sqlparser::ast::Visitor for Calls {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
        if matches!(e, Expr::Function(_)) && !is_tagged(e) {
            self.add(e);
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Wraps the arguments of the calls [`distinct_cast_names`] chose.
struct WrapTagged<'a> {
    tags: &'a std::collections::HashMap<String, usize>,
}

impl datafusion::sql::sqlparser::ast::VisitorMut for WrapTagged<'_> {
    type Break = ();
    // After the children: the text ignores tags set on them.
    fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
        if is_tagged(e) {
            return std::ops::ControlFlow::Continue(());
        }
        let Some(&n) = self.tags.get(&as_written(e)) else {
            return std::ops::ControlFlow::Continue(());
        };
        match e {
            Expr::Function(f) => {
                use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr};
                if let datafusion::sql::sqlparser::ast::FunctionArguments::List(list) = &mut f.args
                {
                    for arg in &mut list.args {
                        let (FunctionArg::Unnamed(FunctionArgExpr::Expr(a))
                        | FunctionArg::Named {
                            arg: FunctionArgExpr::Expr(a),
                            ..
                        }) = arg
                        else {
                            continue;
                        };
                        // A constant argument stays one: functions such
                        // as date_part read it while planning.
                        let constant = match a {
                            Expr::Cast { expr, .. } => {
                                matches!(expr.as_ref(), Expr::Value(_) | Expr::TypedString(_))
                            }
                            Expr::Value(_) | Expr::TypedString(_) => true,
                            _ => false,
                        };
                        if !constant && !is_tagged(a) && cast_free(a) != as_written(a) {
                            *a = tagged(a.clone(), n);
                        }
                    }
                }
            }
            other => *other = tagged(other.clone(), n),
        }
        std::ops::ControlFlow::Continue(())
    }
}

fn tagged(e: Expr, n: usize) -> Expr {
    use datafusion::sql::sqlparser::ast::{
        Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
        ObjectName, Value,
    };
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(TEMPORA_NAMED)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(
                    Value::Number(n.to_string(), false).into(),
                ))),
            ],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

const TEMPORA_NAMED: &str = tempora_query::expr_names::TEMPORA_NAMED;

fn is_tagged(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if crate::function_name(&f.name) == TEMPORA_NAMED)
}

/// How far [`plain_text`] reduces an expression.
#[derive(Clone, Copy, PartialEq)]
enum Reduce {
    /// Parentheses and `tempora_named` wrappers dropped.
    Tags,
    /// Casts dropped too.
    Casts,
    /// Casts and qualifiers dropped, lower case: what DataFusion's name of
    /// the expression can tell apart (roughly; finer than that only costs
    /// an extra wrapper).
    Key,
}

fn as_written(e: &Expr) -> String {
    plain_text(e, Reduce::Tags)
}

fn cast_free(e: &Expr) -> String {
    plain_text(e, Reduce::Casts)
}

fn cast_free_key(e: &Expr) -> String {
    plain_text(e, Reduce::Key)
}

fn plain_text(e: &Expr, reduce: Reduce) -> String {
    use datafusion::sql::sqlparser::ast::{
        FunctionArg, FunctionArgExpr, FunctionArguments, VisitMut,
    };
    struct Reducer(Reduce);
    impl datafusion::sql::sqlparser::ast::VisitorMut for Reducer {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            let inner = match e {
                Expr::Nested(inner) => Some(inner.as_mut()),
                Expr::Cast { expr, .. } if self.0 != Reduce::Tags => Some(expr.as_mut()),
                Expr::Function(f) if crate::function_name(&f.name) == TEMPORA_NAMED => {
                    match &mut f.args {
                        FunctionArguments::List(list) => match list.args.first_mut() {
                            Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(a))) => Some(a),
                            _ => None,
                        },
                        _ => None,
                    }
                }
                Expr::CompoundIdentifier(parts) if self.0 == Reduce::Key => {
                    if let Some(last) = parts.pop() {
                        *e = Expr::Identifier(last);
                    }
                    None
                }
                _ => None,
            };
            if let Some(inner) = inner {
                let inner = std::mem::replace(
                    inner,
                    Expr::Value(datafusion::sql::sqlparser::ast::Value::Null.into()),
                );
                *e = inner;
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut e = e.clone();
    let _ = e.visit(&mut Reducer(reduce));
    let text = e.to_string();
    if reduce == Reduce::Key {
        text.to_lowercase()
    } else {
        text
    }
}
