//! The session's DataFusion state, kept between statements.
//!
//! `SessionContext::state()` clones the whole state: every function
//! registry (several hundred entries with PostgreSQL's functions) and the
//! configuration. Building a `TaskContext` from it copies the registries
//! again. A statement planned and run through the context paid for three
//! or four such copies, a sixth of what `SELECT 1` costs.
//!
//! Tempora's session state changes after it is built only where
//! [`SqlSession::forget_df_state`] is called (a new `TimeZone`); tables,
//! schemas and the extensions it carries are shared behind `Arc`s and
//! change in place. So one copy serves every statement until then.

use std::sync::{Arc, Mutex};

use datafusion::execution::{SessionState, TaskContext};

use crate::SqlSession;

#[derive(Debug, Default)]
pub(crate) struct DfState(Mutex<Option<Kept>>);

#[derive(Debug)]
struct Kept {
    state: Arc<SessionState>,
    task: Arc<TaskContext>,
}

impl DfState {
    fn with<T>(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        f: impl FnOnce(&mut Kept) -> T,
    ) -> T {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let kept = kept.get_or_insert_with(|| {
            let state = ctx.state();
            let task = state.task_ctx();
            Kept {
                state: Arc::new(state),
                task,
            }
        });
        f(kept)
    }
}

impl SqlSession {
    /// The session's DataFusion state, its execution started now (the time
    /// `now()` folds to).
    pub(crate) fn df_state(&self) -> Arc<SessionState> {
        self.df_state.with(&self.ctx, |kept| {
            // Copies the state only while a statement still plans with the
            // previous one.
            Arc::make_mut(&mut kept.state).mark_start_execution();
            kept.state.clone()
        })
    }

    /// The context statements of this session execute in.
    pub(crate) fn task_ctx(&self) -> Arc<TaskContext> {
        self.df_state.with(&self.ctx, |kept| kept.task.clone())
    }

    /// Drops the kept state: the next statement copies the context's again.
    /// Call after changing the context's state.
    pub(crate) fn forget_df_state(&self) {
        *self.df_state.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
