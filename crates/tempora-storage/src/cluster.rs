//! The databases of one server (`CREATE DATABASE`).
//!
//! Each database is an [`Engine`] of its own, with its own catalog, WAL and
//! chunk files, so hypertable, chunk and job ids count from 1 in each, as in
//! TimescaleDB. The first database, `postgres`, lives at the root of the
//! data directory; every other one under `databases/<oid>/`.
//!
//! Roles and the list of databases belong to the whole server, as
//! PostgreSQL's shared catalogs do: the first database's catalog holds them,
//! and every other database's catalog keeps a copy ([`Cluster::sync_shared`])
//! so that the code reading roles from a session's catalog sees the same
//! ones everywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tempora_catalog::{
    transaction, CatalogOp, CatalogState, DatabaseDef, FIRST_DATABASE, FIRST_DATABASE_OID,
};
use tempora_common::{Result, SqlState, TemporaError};
use tokio::task::JoinHandle;

use crate::{Engine, EngineOptions};

/// The directory, under the server's data directory, that holds every
/// database but the first, one subdirectory per oid.
const DATABASES_DIR: &str = "databases";

/// The directory of database `oid` under the server's data directory
/// `server_dir`: the first database's is `server_dir` itself.
pub fn database_dir(server_dir: &Path, oid: u32) -> PathBuf {
    if oid == FIRST_DATABASE_OID {
        server_dir.to_path_buf()
    } else {
        server_dir.join(DATABASES_DIR).join(oid.to_string())
    }
}

/// The server's data directory, from the options one database was opened with.
pub fn server_dir(options: &EngineOptions) -> Option<PathBuf> {
    if options.database == FIRST_DATABASE {
        Some(options.data_dir.clone())
    } else {
        // `<server>/databases/<oid>`
        Some(options.data_dir.parent()?.parent()?.to_path_buf())
    }
}

/// The directory holding every database but the first, under `server_dir`.
pub fn other_databases_dir(server_dir: &Path) -> PathBuf {
    server_dir.join(DATABASES_DIR)
}

/// Called for every database the server opens, before its background tasks
/// start (the server installs its job runner there).
pub type OnOpen = Box<dyn Fn(&Arc<Engine>) + Send + Sync>;

/// Every database of the server, open, with their background tasks.
pub struct Cluster {
    options: EngineOptions,
    on_open: OnOpen,
    main: Arc<Engine>,
    /// The open databases by oid, the first one included.
    open: parking_lot::Mutex<BTreeMap<u32, Open>>,
    /// One copy of the shared objects at a time.
    sync_lock: tokio::sync::Mutex<()>,
    /// The data directory's lock file, held while the server runs.
    _lock: std::fs::File,
}

/// The file in the data directory a running server holds locked, so that a
/// second server started on the same directory refuses to start instead of
/// writing the same WAL and catalog (PostgreSQL's `postmaster.pid`).
pub const LOCK_FILE: &str = "tempora.pid";

/// Takes the data directory's lock and writes this process's id into the
/// lock file. The lock goes with the process, so a crash leaves no stale
/// lock behind.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let io = |what: &str, e: std::io::Error| TemporaError::io(what, &e);
    std::fs::create_dir_all(dir).map_err(|e| io("could not create data directory", e))?;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io("could not open lock file", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let pid = if holder.is_empty() {
                String::new()
            } else {
                format!(" (PID {holder})")
            };
            return Err(TemporaError::new(
                SqlState::OBJECT_IN_USE,
                format!(
                    "lock file \"{}\" is held: is another Tempora server{pid} running in data directory \"{}\"?",
                    LOCK_FILE,
                    dir.display()
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io("could not lock data directory", e)),
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.sync_all())
        .map_err(|e| io("could not write lock file", e))?;
    Ok(file)
}

struct Open {
    engine: Arc<Engine>,
    /// Sessions connected to the database.
    connections: Arc<AtomicUsize>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// A session's hold on its database: while any exists, the database cannot
/// be dropped.
#[derive(Debug)]
pub struct DatabaseGuard {
    connections: Arc<AtomicUsize>,
    oid: u32,
}

impl DatabaseGuard {
    /// The oid of the database the session is connected to.
    pub fn oid(&self) -> u32 {
        self.oid
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A new session's database.
#[derive(Debug)]
pub struct Connected {
    pub engine: Arc<Engine>,
    pub guard: DatabaseGuard,
    /// Its parameter defaults (`ALTER DATABASE ... SET`).
    pub settings: BTreeMap<String, String>,
}

/// PostgreSQL's 3D000 for a database that does not exist.
pub fn no_such_database(name: &str) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_CATALOG_NAME,
        format!("database \"{name}\" does not exist"),
    )
}

impl Cluster {
    /// Opens the first database at `options.data_dir` and every database
    /// its catalog lists, and starts their background tasks (flush,
    /// compaction, job scheduler). Directories of databases no longer
    /// listed (a DROP DATABASE cut short) are removed.
    pub async fn open(options: EngineOptions, on_open: OnOpen) -> Result<Arc<Cluster>> {
        let lock = lock_data_dir(&options.data_dir)?;
        let mut first = options.clone();
        first.database = FIRST_DATABASE.into();
        let main = Engine::open(first).await?;
        let cluster = Arc::new(Cluster {
            options,
            on_open,
            main: main.clone(),
            open: parking_lot::Mutex::new(BTreeMap::new()),
            sync_lock: tokio::sync::Mutex::new(()),
            _lock: lock,
        });
        cluster.start(FIRST_DATABASE_OID, main);
        let listed = cluster.main.catalog().snapshot().databases.clone();
        cluster.remove_orphans(&listed).await;
        for db in listed.values().filter(|d| d.oid != FIRST_DATABASE_OID) {
            let engine = Engine::open(cluster.options_for(db)).await.map_err(|e| {
                TemporaError::new(
                    e.code,
                    format!("could not open database \"{}\": {}", db.name, e.message),
                )
            })?;
            cluster.start(db.oid, engine);
        }
        cluster.sync_shared().await?;
        Ok(cluster)
    }

    /// The first database (`postgres`), whose catalog holds the roles.
    pub fn main(&self) -> &Arc<Engine> {
        &self.main
    }

    /// The directory of database `oid`.
    fn dir_of(&self, oid: u32) -> PathBuf {
        database_dir(&self.options.data_dir, oid)
    }

    fn options_for(&self, db: &DatabaseDef) -> EngineOptions {
        let mut options = self.options.clone();
        options.data_dir = self.dir_of(db.oid);
        options.database = db.name.clone();
        options
    }

    /// Registers an opened database and starts its background tasks.
    fn start(&self, oid: u32, engine: Arc<Engine>) {
        (self.on_open)(&engine);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let tasks = vec![
            tokio::spawn(engine.clone().run_flusher(stop_rx.clone())),
            tokio::spawn(engine.clone().run_scheduler(stop_rx.clone())),
            tokio::spawn(engine.clone().run_metadata_warmer(stop_rx.clone())),
            tokio::spawn(engine.clone().run_compactor(stop_rx)),
        ];
        self.open.lock().insert(
            oid,
            Open {
                engine,
                connections: Arc::new(AtomicUsize::new(0)),
                stop,
                tasks,
            },
        );
    }

    async fn remove_orphans(&self, listed: &BTreeMap<u32, DatabaseDef>) {
        let root = other_databases_dir(&self.options.data_dir);
        let Ok(mut entries) = tokio::fs::read_dir(&root).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name();
            let listed = name
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|oid| listed.contains_key(&oid));
            if !listed {
                tracing::info!(dir = %entry.path().display(), "removing a dropped database's files");
                if let Err(e) = tokio::fs::remove_dir_all(entry.path()).await {
                    tracing::warn!(error = %e, "could not remove a dropped database's files");
                }
            }
        }
    }

    /// The engine of database `name` for a new session, and the session's
    /// hold on it: 3D000 when there is no such database, 55000 when it
    /// takes no connections, 53300 past its connection limit.
    pub fn connect(&self, name: &str) -> Result<Connected> {
        let def = self
            .main
            .catalog()
            .shared_snapshot()
            .database_or_first(name)
            .ok_or_else(|| no_such_database(name))?;
        if !def.allow_connections {
            return Err(TemporaError::new(
                SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("database \"{name}\" is not currently accepting connections"),
            ));
        }
        let open = self.open.lock();
        let db = open.get(&def.oid).ok_or_else(|| no_such_database(name))?;
        let before = db.connections.fetch_add(1, Ordering::AcqRel);
        let guard = DatabaseGuard {
            connections: db.connections.clone(),
            oid: def.oid,
        };
        if def.connection_limit >= 0 && before >= def.connection_limit as usize {
            return Err(TemporaError::new(
                SqlState::TOO_MANY_CONNECTIONS,
                format!("too many connections for database \"{name}\""),
            ));
        }
        Ok(Connected {
            engine: db.engine.clone(),
            guard,
            settings: def.settings,
        })
    }

    /// Creates database `def.name` (its oid is assigned here): one commit
    /// in the first database's catalog, then its directory and engine.
    /// 42P04 when the name is taken.
    pub async fn create_database(&self, mut def: DatabaseDef) -> Result<DatabaseDef> {
        let name = def.name.clone();
        let state = transaction::outside(self.main.catalog().commit(|state| {
            if name == FIRST_DATABASE || state.database(&name).is_some() {
                return Err(TemporaError::new(
                    SqlState::DUPLICATE_DATABASE,
                    format!("database \"{name}\" already exists"),
                ));
            }
            def.oid = state.next_oid;
            Ok(vec![CatalogOp::PutDatabase(def.clone())])
        }))
        .await?;
        let def = state
            .database(&name)
            .cloned()
            .ok_or_else(|| TemporaError::internal("created database missing"))?;
        let opened = async {
            // A directory left by a database of the same oid dropped before
            // a crash would be read as this one's.
            let dir = self.dir_of(def.oid);
            if tokio::fs::try_exists(&dir).await.unwrap_or(false) {
                tokio::fs::remove_dir_all(&dir)
                    .await
                    .map_err(|e| TemporaError::io("could not clear the database directory", &e))?;
            }
            Engine::open(self.options_for(&def)).await
        }
        .await;
        let engine = match opened {
            Ok(engine) => engine,
            Err(e) => {
                let undo = transaction::outside(
                    self.main
                        .catalog()
                        .commit(|_| Ok(vec![CatalogOp::DropDatabase { oid: def.oid }])),
                )
                .await;
                if let Err(u) = undo {
                    tracing::error!(error = %u, "could not forget a database that failed to open");
                }
                let _ = tokio::fs::remove_dir_all(self.dir_of(def.oid)).await;
                return Err(e);
            }
        };
        self.start(def.oid, engine);
        self.sync_shared().await?;
        tracing::info!(database = %def.name, oid = def.oid, "database created");
        Ok(def)
    }

    /// Drops database `name`: 55006 while sessions are connected to it.
    /// Its catalog entry goes first (one commit), then its engine and files.
    pub async fn drop_database(&self, name: &str) -> Result<()> {
        let (def, db) = self.take_unused(name)?;
        let committed = transaction::outside(
            self.main
                .catalog()
                .commit(|_| Ok(vec![CatalogOp::DropDatabase { oid: def.oid }])),
        )
        .await;
        if let Err(e) = committed {
            // Still listed: it stays open.
            self.open.lock().insert(def.oid, db);
            return Err(e);
        }
        Self::stop_tasks(db).await.stop_wal();
        if let Err(e) = tokio::fs::remove_dir_all(self.dir_of(def.oid)).await {
            // Removed at the next start instead.
            tracing::warn!(error = %e, database = name, "could not remove a dropped database's files");
        }
        self.sync_shared().await?;
        tracing::info!(database = name, "database dropped");
        Ok(())
    }

    /// Takes database `name` (not the first one) out of the open ones, so
    /// that no session can connect to it, when none is connected: 3D000
    /// when there is no such database, 55006 while sessions use it. The
    /// caller puts it back if it goes on living.
    fn take_unused(&self, name: &str) -> Result<(DatabaseDef, Open)> {
        let def = self
            .main
            .catalog()
            .shared_snapshot()
            .database(name)
            .cloned()
            .ok_or_else(|| no_such_database(name))?;
        let mut open = self.open.lock();
        let others = open
            .get(&def.oid)
            .ok_or_else(|| no_such_database(name))?
            .connections
            .load(Ordering::Acquire);
        if others > 0 {
            let sessions = if others == 1 { "session" } else { "sessions" };
            let verb = if others == 1 { "is" } else { "are" };
            return Err(TemporaError::new(
                SqlState::OBJECT_IN_USE,
                format!("database \"{name}\" is being accessed by other users"),
            )
            .with_detail(format!(
                "There {verb} {others} other {sessions} using the database."
            )));
        }
        let db = open
            .remove(&def.oid)
            .ok_or_else(|| no_such_database(name))?;
        Ok((def, db))
    }

    /// Renames database `name` (not the first one): 55006 while sessions
    /// are connected to it, 42P04 when `to` is taken. Its engine is closed
    /// and opened again under the new name (its directory, named by oid,
    /// stays).
    pub async fn rename_database(&self, name: &str, to: &str) -> Result<()> {
        let (def, db) = self.take_unused(name)?;
        let committed = transaction::outside(self.main.catalog().commit(|state| {
            if to == FIRST_DATABASE || state.database(to).is_some() {
                return Err(TemporaError::new(
                    SqlState::DUPLICATE_DATABASE,
                    format!("database \"{to}\" already exists"),
                ));
            }
            let mut renamed = def.clone();
            renamed.name = to.to_string();
            Ok(vec![CatalogOp::PutDatabase(renamed)])
        }))
        .await;
        let renamed = match committed {
            Ok(state) => state.database(to).cloned(),
            Err(e) => {
                self.open.lock().insert(def.oid, db);
                return Err(e);
            }
        };
        let engine = Self::stop_tasks(db).await;
        engine.close().await?;
        drop(engine);
        let renamed = renamed.ok_or_else(|| TemporaError::internal("renamed database missing"))?;
        let reopened = Engine::open(self.options_for(&renamed)).await?;
        self.start(renamed.oid, reopened);
        self.sync_shared().await?;
        tracing::info!(database = name, to, "database renamed");
        Ok(())
    }

    /// Changes database `name`'s entry (ALTER DATABASE), in the first
    /// database's catalog and every copy.
    pub async fn alter_database(
        &self,
        name: &str,
        change: impl FnOnce(&mut DatabaseDef) -> Result<()>,
    ) -> Result<()> {
        transaction::outside(self.main.catalog().commit(|state| {
            let mut def = state
                .database_or_first(name)
                .ok_or_else(|| no_such_database(name))?;
            change(&mut def)?;
            Ok(vec![CatalogOp::PutDatabase(def)])
        }))
        .await?;
        self.sync_shared().await
    }

    /// Stops a database's background tasks; returns its engine.
    async fn stop_tasks(db: Open) -> Arc<Engine> {
        let _ = db.stop.send(true);
        let mut tasks = db.tasks.into_iter();
        // The flusher and the scheduler finish what they are doing.
        for task in tasks.by_ref().take(2) {
            let _ = task.await;
        }
        // A merge cut short leaves only an unlisted file, removed at the next start.
        for task in tasks {
            task.abort();
        }
        db.engine
    }

    /// Copies the roles and databases of the first database's catalog into
    /// every other database's catalog (after any of them changed).
    pub async fn sync_shared(&self) -> Result<()> {
        let _one = self.sync_lock.lock().await;
        let shared = self.main.catalog().shared_snapshot();
        let engines: Vec<Arc<Engine>> = self
            .open
            .lock()
            .iter()
            .filter(|(oid, _)| **oid != FIRST_DATABASE_OID)
            .map(|(_, db)| db.engine.clone())
            .collect();
        for engine in engines {
            let ops = shared_diff(&shared, &engine.catalog().shared_snapshot());
            if !ops.is_empty() {
                transaction::outside(engine.catalog().commit(move |_| Ok(ops))).await?;
            }
        }
        Ok(())
    }

    /// Stops every database's background tasks, then flushes and closes
    /// each (graceful shutdown).
    pub async fn close(&self) -> Result<()> {
        let all: Vec<Open> = std::mem::take(&mut *self.open.lock())
            .into_values()
            .collect();
        let mut result = Ok(());
        for db in all {
            let engine = Self::stop_tasks(db).await;
            if let Err(e) = engine.close().await {
                tracing::error!(database = %engine.options().database, error = %e, "flush at shutdown failed");
                result = Err(e);
            }
        }
        result
    }
}

/// The ops that make `copy`'s roles and databases those of `shared`.
fn shared_diff(shared: &CatalogState, copy: &CatalogState) -> Vec<CatalogOp> {
    let mut ops = Vec::new();
    for (oid, role) in &shared.roles {
        if copy.roles.get(oid) != Some(role) {
            ops.push(CatalogOp::PutRole(role.clone()));
        }
    }
    for oid in copy.roles.keys() {
        if !shared.roles.contains_key(oid) {
            ops.push(CatalogOp::DropRole { oid: *oid });
        }
    }
    for (oid, db) in &shared.databases {
        if copy.databases.get(oid) != Some(db) {
            ops.push(CatalogOp::PutDatabase(db.clone()));
        }
    }
    for oid in copy.databases.keys() {
        if !shared.databases.contains_key(oid) {
            ops.push(CatalogOp::DropDatabase { oid: *oid });
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(oid: u32, name: &str) -> DatabaseDef {
        DatabaseDef {
            oid,
            name: name.into(),
            owner: 10,
            connection_limit: -1,
            allow_connections: true,
            collate: "C".into(),
            ctype: "C".into(),
            settings: Default::default(),
        }
    }

    #[test]
    fn the_copy_follows_the_shared_roles_and_databases() {
        let mut shared = CatalogState::default();
        let mut copy = CatalogState::default();
        shared
            .roles
            .insert(10, tempora_catalog::RoleDef::new(10, "postgres"));
        shared
            .roles
            .insert(16390, tempora_catalog::RoleDef::new(16390, "reader"));
        copy.roles
            .insert(10, tempora_catalog::RoleDef::new(10, "postgres"));
        copy.roles
            .insert(16391, tempora_catalog::RoleDef::new(16391, "gone"));
        shared.databases.insert(16400, db(16400, "tsdb"));
        copy.databases.insert(16401, db(16401, "old"));
        let ops = shared_diff(&shared, &copy);
        for op in &ops {
            copy.apply(op).expect("applies");
        }
        assert_eq!(copy.roles, shared.roles);
        assert_eq!(copy.databases, shared.databases);
        assert!(shared_diff(&shared, &copy).is_empty());
    }
}
