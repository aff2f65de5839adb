//! A PostgreSQL database of the benchmark's own, dropped afterwards.

use anyhow::Context;

#[derive(Debug)]
pub(crate) struct Scratch {
    admin_url: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::task::spawn_local(connection);
    Ok(client)
}

impl Scratch {
    pub(crate) async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("tessera_bench_{}", std::process::id());
        let admin = connect(admin_url).await?;
        // Two statements, two round trips: neither may run inside a transaction block.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .batch_execute(&sql)
                .await
                .context("creating the benchmark's database")?;
        }
        let mut url = url::Url::parse(admin_url).context("the --postgres URL")?;
        url.set_path(&format!("/{name}"));
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }

    pub(crate) async fn bytes(&self) -> anyhow::Result<u64> {
        let client = connect(&self.url).await?;
        let row = client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (url, sql) = (
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        // Inside the benchmark's runtime: a runtime of its own, on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(&sql).await
            })?;
            anyhow::Ok(())
        })
        .join();
    }
}
