//! A small connection pool: at most `size` connections, opened lazily, each with
//! `synchronous_commit = on`; a connection found closed is replaced on the next checkout.

use std::sync::Mutex;

use grantflow_store::StoreError;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config, NoTls};

/// The pool.
pub(crate) struct Pool {
    config: Config,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

/// A checked-out connection; it goes back to the pool when dropped (unless it is closed).
pub(crate) struct Conn<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    /// A pool of at most `size` connections (at least one).
    pub(crate) fn new(config: Config, size: usize) -> Pool {
        Pool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
        }
    }

    /// A connection: an idle one, or a new one while fewer than `size` are open.
    pub(crate) async fn get(&self) -> Result<Conn<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the connection pool is shut".to_string()))?;
        loop {
            let candidate = lock(&self.idle).pop();
            match candidate {
                Some(client) if !client.is_closed() => {
                    return Ok(Conn {
                        client: Some(client),
                        pool: self,
                        _permit: permit,
                    })
                }
                Some(_) => continue,
                None => break,
            }
        }
        let client = connect(&self.config).await?;
        Ok(Conn {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }

    /// A new connection of the pool's settings that the pool does not count or keep.
    pub(crate) async fn connect_unpooled(&self) -> Result<Client, StoreError> {
        connect(&self.config).await
    }

    /// Closes the idle connections (a later checkout opens new ones).
    pub(crate) fn clear(&self) {
        lock(&self.idle).clear();
    }
}

impl Conn<'_> {
    /// The client.
    pub(crate) fn client(&mut self) -> Result<&mut Client, StoreError> {
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("connection already returned".to_string()))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                lock(&self.pool.idle).push(client);
            }
        }
    }
}

/// Opens one connection (its driver runs on a spawned task) with `synchronous_commit = on`
/// whatever the server's or the role's default.
pub(crate) async fn connect(config: &Config) -> Result<Client, StoreError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(crate::pg_err("connecting to PostgreSQL"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "PostgreSQL connection ended");
        }
    });
    client
        .batch_execute(
            "SET synchronous_commit TO on; \
             SET default_transaction_isolation TO 'read committed'",
        )
        .await
        .map_err(crate::pg_err("configuring a PostgreSQL session"))?;
    Ok(client)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded vector is only pushed to and popped from: a panic cannot tear it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
