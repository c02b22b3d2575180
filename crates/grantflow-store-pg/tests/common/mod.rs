//! Test support: the PostgreSQL [`Backend`] of the conformance suite, with the suite's
//! helpers (`grantflow_store::testing`) and the sled backend (for moving logs between them).
#![allow(dead_code, unused_imports)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use grantflow_store::EventStore;
use grantflow_store_pg::PgStore;

pub use grantflow_store::testing::{
    append, batch_for, command, event, fill, read_all, run, Backend,
};
pub use grantflow_store_sled::testing::sled_backend;

/// The environment variable holding the PostgreSQL URL of the tests.
pub const PG_ENV: &str = "GRANTFLOW_TEST_POSTGRES";

// ---------------------------------------------------------------------------------------
// PostgreSQL

/// PostgreSQL stores, each in its own freshly named schema, dropped at cleanup.
pub struct PgBackend {
    /// The server's URL (from [`PG_ENV`]).
    pub url: String,
    schemas: Mutex<Vec<String>>,
}

/// The PostgreSQL URL of the tests, or `None` (after saying so) when it is not set.
pub fn pg_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // Once per test binary, and past the test harness's output capture so that it
            // shows in a plain `cargo test`.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping PostgreSQL tests: {PG_ENV} is not set"
                );
            });
            None
        }
    }
}

/// The PostgreSQL backend, `None` when [`PG_ENV`] is not set.
pub async fn pg_backend() -> Option<Arc<dyn Backend>> {
    let backend: Arc<dyn Backend> = pg()?;
    Some(backend)
}

/// The PostgreSQL backend with its own methods.
pub fn pg() -> Option<Arc<PgBackend>> {
    Some(Arc::new(PgBackend {
        url: pg_url()?,
        schemas: Mutex::new(Vec::new()),
    }))
}

impl PgBackend {
    /// A new random schema name, dropped at cleanup.
    pub fn new_schema(&self) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("gf_test_{}", &id[..16]);
        self.schemas.lock().unwrap().push(schema.clone());
        schema
    }

    /// The URL of a store in `schema`.
    pub fn url_for(&self, schema: &str) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}schema={schema}", self.url)
    }

    /// A plain connection to the server (as the URL's role).
    pub async fn admin(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Connects a store to a new schema; returns it and the schema.
    pub async fn create_pg(&self) -> (PgStore, String) {
        let schema = self.new_schema();
        let store = PgStore::connect(&self.url_for(&schema)).await.unwrap();
        (store, schema)
    }
}

#[async_trait]
impl Backend for PgBackend {
    async fn create(&self) -> (Arc<dyn EventStore>, String) {
        let schema = self.new_schema();
        let url = self.url_for(&schema);
        let store = PgStore::connect(&url).await.unwrap();
        (Arc::new(store), url)
    }

    async fn reopen(&self, location: &str) -> Arc<dyn EventStore> {
        Arc::new(PgStore::connect(location).await.unwrap())
    }

    async fn cleanup(&self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().unwrap());
        if schemas.is_empty() {
            return;
        }
        let client = self.admin().await;
        client
            .batch_execute("SET lock_timeout TO '20s'")
            .await
            .unwrap();
        for schema in schemas {
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await
                .unwrap();
        }
    }
}
