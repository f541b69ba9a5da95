//! Where `ferry user` edits accounts: the users file (rewritten under a lock) or the accounts
//! database (one statement per change, the schema created or migrated first).

use crate::accounts::limits::AccountLimits;
use crate::accounts::postgres::connection::connect;
use crate::accounts::postgres::records;
use crate::accounts::postgres::schema::migrate;
use crate::accounts::users::{UserRecord, UsersError, UsersFile};
use crate::config::UsersDatabase;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The accounts `ferry user` works on.
pub(super) enum AccountStore {
    File(PathBuf),
    Database(Box<DatabaseStore>),
}

/// A connection to the accounts database, schema current.
pub(super) struct DatabaseStore {
    database: UsersDatabase,
    client: tokio_postgres::Client,
    /// Runs the database calls; `ferry user` is otherwise synchronous.
    runtime: tokio::runtime::Runtime,
}

impl AccountStore {
    /// The users file at `location`, or the database it names (connected, schema current).
    /// The database password comes from `password_file`, else `PGPASSWORD`.
    pub(super) fn open(location: &str, password_file: Option<&Path>) -> Result<Self, UsersError> {
        let Some(database) = UsersDatabase::parse(location) else {
            return Ok(AccountStore::File(PathBuf::from(location)));
        };
        let invalid = |problem: String| UsersError::InvalidUsersLocation { problem };
        let database = database.map_err(invalid)?;
        let database = database
            .with_password(password_file, &|name| std::env::var(name).ok())
            .map_err(|error| {
                invalid(format!(
                    "could not read the password file {}: {error}",
                    password_file.unwrap_or(Path::new("")).display()
                ))
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| invalid(format!("could not start the async runtime: {error}")))?;
        let client = runtime.block_on(async {
            let mut connection = connect(&database).await?;
            migrate(&mut connection.client, &database).await?;
            Ok::<_, UsersError>(connection.client)
        })?;
        Ok(AccountStore::Database(Box::new(DatabaseStore {
            database,
            client,
            runtime,
        })))
    }

    /// The file or the database URL (without password), as messages name it.
    pub(super) fn location(&self) -> PathBuf {
        match self {
            AccountStore::File(path) => path.clone(),
            AccountStore::Database(store) => PathBuf::from(store.database.to_string()),
        }
    }

    /// The accounts as they are now. A users file that does not exist yet is empty when
    /// `creating` says where to tell so (`add`), and an error otherwise.
    pub(super) fn load(&self, creating: Option<&mut dyn Write>) -> Result<UsersFile, UsersError> {
        match (self, creating) {
            (AccountStore::File(path), Some(out)) => load_or_create(path, out),
            (AccountStore::File(path), None) => UsersFile::load(path),
            (AccountStore::Database(store), _) => Ok(store
                .runtime
                .block_on(records::load_users(&store.client, &store.database))?
                .0),
        }
    }

    /// Adds `record`; [`UsersError::UserExists`] when the name was taken meanwhile.
    pub(super) fn insert(&self, record: UserRecord) -> Result<(), UsersError> {
        let exists = |path: PathBuf, user: String| UsersError::UserExists { path, user };
        match self {
            AccountStore::File(path) => edit_locked(path, |file| {
                // Checked again under the lock: another `add` may have won the name meanwhile.
                if file.get(&record.name).is_some() {
                    return Err(exists(path.clone(), record.name.clone()));
                }
                file.insert(record);
                Ok(())
            }),
            AccountStore::Database(store) => match store.runtime.block_on(records::insert_user(
                &store.client,
                &store.database,
                &record,
            ))? {
                true => Ok(()),
                false => Err(exists(self.location(), record.name)),
            },
        }
    }

    /// Replaces the password hash of `name`.
    pub(super) fn set_password(&self, name: &str, password_hash: String) -> Result<(), UsersError> {
        match self {
            AccountStore::File(path) => edit_locked(path, |file| match file.get_mut(name) {
                Some(record) => {
                    record.password_hash = password_hash;
                    Ok(())
                }
                // Removed while the password was typed.
                None => Err(self.no_such_user(name)),
            }),
            AccountStore::Database(store) => store
                .runtime
                .block_on(records::set_password(
                    &store.client,
                    &store.database,
                    name,
                    &password_hash,
                ))?
                .then_some(())
                .ok_or_else(|| self.no_such_user(name)),
        }
    }

    /// Replaces the quotas and bandwidth limits of `name`.
    pub(super) fn set_limits(&self, name: &str, limits: AccountLimits) -> Result<(), UsersError> {
        match self {
            AccountStore::File(path) => edit_locked(path, |file| match file.get_mut(name) {
                Some(record) => {
                    record.limits = limits;
                    Ok(())
                }
                None => Err(self.no_such_user(name)),
            }),
            AccountStore::Database(store) => store
                .runtime
                .block_on(records::set_limits(
                    &store.client,
                    &store.database,
                    name,
                    &limits,
                ))?
                .then_some(())
                .ok_or_else(|| self.no_such_user(name)),
        }
    }

    /// Removes `name` (its files stay).
    pub(super) fn remove(&self, name: &str) -> Result<(), UsersError> {
        match self {
            AccountStore::File(path) => edit_locked(path, |file| match file.remove(name) {
                Some(_) => Ok(()),
                None => Err(self.no_such_user(name)),
            }),
            AccountStore::Database(store) => store
                .runtime
                .block_on(records::remove_user(&store.client, &store.database, name))?
                .then_some(())
                .ok_or_else(|| self.no_such_user(name)),
        }
    }

    pub(super) fn no_such_user(&self, name: &str) -> UsersError {
        UsersError::NoSuchUser {
            path: self.location(),
            user: name.to_owned(),
        }
    }
}

/// Applies `edit` to the users file as it is now and saves the result, all under an exclusive
/// lock, so that concurrent edits (ten `ferry user add` at once, a `remove` racing an `add`)
/// each apply to what the one before saved instead of overwriting it. The file is read again
/// here, under the lock: a copy read earlier (before a password prompt, or an argon2 hash that
/// takes 50 ms) may be stale. An error from `edit` leaves the file untouched.
fn edit_locked(
    path: &Path,
    edit: impl FnOnce(&mut UsersFile) -> Result<(), UsersError>,
) -> Result<(), UsersError> {
    let _lock = UsersFileLock::acquire(path)?;
    // Whatever `load_or_create` would say was said already, before the lock.
    let mut file = load_or_create(path, &mut io::sink())?;
    edit(&mut file)?;
    file.save(path)
}

/// An exclusive flock(2) on the users file's sidecar lock file, `<users file>.lock` beside the
/// file a symlink leads to, held until dropped. Not on the users file itself: `save` replaces
/// that by renaming a new file over it, and a lock on the old inode would not exclude the next
/// editor, who opens the new one. The lock file is never removed: removing it would let two
/// editors hold locks on two different lock files. The server does not take it: it only reads,
/// and every save is an atomic rename.
#[derive(Debug)]
struct UsersFileLock {
    _file: std::fs::File,
}

impl UsersFileLock {
    fn acquire(users_file: &Path) -> Result<Self, UsersError> {
        let path = lock_file_path(users_file);
        let lock_error = |source| UsersError::Lock {
            path: path.clone(),
            source,
        };
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(lock_error)?
        };
        // Blocking: another `ferry user` holds it for the few milliseconds of a save.
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|errno| lock_error(io::Error::from(errno)))?;
        Ok(UsersFileLock { _file: file })
    }
}

/// `<users file>.lock`, beside the file a symlink at `users_file` leads to (where `save` writes).
fn lock_file_path(users_file: &Path) -> PathBuf {
    let target = std::fs::canonicalize(users_file).unwrap_or_else(|_| users_file.to_path_buf());
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    target.with_file_name(name)
}

/// Loads `path`, or starts an empty users file when it does not exist yet.
fn load_or_create(path: &Path, out: &mut dyn Write) -> Result<UsersFile, UsersError> {
    match UsersFile::load(path) {
        Err(UsersError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            writeln!(out, "{} does not exist; creating it", path.display())
                .map_err(UsersError::Output)?;
            Ok(UsersFile::new())
        }
        loaded => loaded,
    }
}
