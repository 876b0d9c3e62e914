//! Pools and clients built from config before the module (shaku providers are synchronous, so
//! anything that connects is built here), each with its cleanup (kratos-style).

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use goex_cache::LocalCache;
use goex_database::{Database, DbError};
use goex_jwt::{JwtError, KeyRing, KeyRingSettings};
use goex_mongo::{MongoClient, MongoError};
use goex_redis::{RedisClient, RedisError};
use slog::Logger;

use crate::meta::config::AppConfig;

/// The MySQL migrations (`migrations/mysql`, also run by `diesel migration run`).
pub const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");
/// The SQLite migrations of the embedded default.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Why the infrastructure could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// The database pool or its migrations failed.
    #[error("database: {0}")]
    Database(#[from] DbError),
    /// The Redis settings are unusable.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// The signing keys cannot be loaded (prod refuses to start without them).
    #[error("certs: {0}")]
    Keys(#[from] JwtError),
    /// The MongoDB settings are unusable.
    #[error("mongodb: {0}")]
    Mongo(#[from] MongoError),
    /// The metrics registry could not be built.
    #[error("{0}")]
    Metrics(#[from] goex_metrics::MetricsError),
    /// The tracer could not be built from `tracing.*`.
    #[error("tracing: {0}")]
    Tracing(#[from] goex_tracing::TracingError),
}

/// Every client the module's components receive.
pub struct Infra {
    /// The relational database pool.
    pub database: Database,
    /// The in-process cache.
    pub cache: LocalCache,
    /// Redis, when `redis.enabled`.
    pub redis: Option<RedisClient>,
    /// MongoDB, when `mongodb.enabled`.
    pub mongo: Option<MongoClient>,
    /// The JWT keys, parsed once.
    pub keys: std::sync::Arc<KeyRing>,
    /// The application logger, for components that report security events.
    pub logger: Logger,
    /// Prometheus metrics, when `metrics.enabled` (the database's pools are registered on it
    /// already).
    pub metrics: Option<goex_metrics::Metrics>,
    /// The client of the gRPC app, or why it could not be made (answered as 10002).
    pub grpc_hello: std::sync::Arc<Result<crate::repository::rpc::GrpcHello, String>>,
    /// The Alibaba Cloud SMS client, or why `alibaba_sms*` cannot make one (each send answers
    /// 10006; the app starts).
    pub sms: std::sync::Arc<Result<goex_sms::AlibabaSms, String>>,
    /// The Jenkins client (never connected at start), or why `jenkins.*` cannot make one.
    pub jenkins: std::sync::Arc<Result<goex_jenkins::JenkinsClient, String>>,
    /// The HMAC key of stored SMS code digests.
    pub sms_code_secret: secrecy::SecretSlice<u8>,
    /// The Consul agent's client for registrations (never connected at start), or why there is
    /// none (`consul.enabled` off, or unusable `consul.*` settings: an app that registers fails
    /// to start with the reason).
    pub consul: std::sync::Arc<Result<goex_consul::ConsulClient, String>>,
    /// The tracer of the served app, when `tracing.enabled` (off for the one-shot commands);
    /// flushed and stopped by [`Infra::close`].
    pub tracing: goex_tracing::Tracing,
}

/// `alibaba_sms.*` and `alibaba_sms_code.*` as a client, or why not.
fn sms_client(config: &AppConfig) -> Result<goex_sms::AlibabaSms, String> {
    if config.alibaba_sms_code.sign_name.trim().is_empty()
        || config.alibaba_sms_code.template_code.trim().is_empty()
    {
        return Err("alibaba_sms_code.sign_name and template_code are required".into());
    }
    goex_sms::AlibabaSms::new(&config.alibaba_sms).map_err(|e| e.to_string())
}

/// `sms.code_secret`, or a random key for this process.
fn sms_code_secret(config: &AppConfig, logger: &Logger) -> secrecy::SecretSlice<u8> {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    use secrecy::ExposeSecret;
    let configured = config.sms.code_secret.expose_secret();
    if !configured.is_empty() {
        return configured.as_bytes().to_vec().into();
    }
    if config.redis.enabled {
        slog::warn!(
            logger,
            "sms.code_secret is empty: codes are checked with a key of this \
            process only, so another instance sharing Redis refuses them (set APP__SMS__CODE_SECRET)"
        );
    }
    let mut key = vec![0u8; 32];
    OsRng.fill_bytes(&mut key);
    key.into()
}

impl Infra {
    /// Builds every client. Connections are lazy: a server that is down does not fail this.
    /// Nothing is traced (the one-shot commands).
    ///
    /// # Errors
    /// A client's settings are unusable.
    pub async fn build(config: &AppConfig, logger: &Logger) -> Result<Infra, InfraError> {
        Self::build_traced(config, logger, None).await
    }

    /// [`Infra::build`] for a served app, tracing as `service` when `tracing.enabled`. The
    /// exporter's channel is made here, inside the runtime that serves the app.
    ///
    /// # Errors
    /// As [`Infra::build`], or `tracing.*` is unusable.
    pub async fn build_traced(
        config: &AppConfig,
        logger: &Logger,
        service: Option<goex_tracing::Service<'_>>,
    ) -> Result<Infra, InfraError> {
        let tracing = match service {
            Some(service) => goex_tracing::Tracing::new(&config.tracing, &service)?,
            None => goex_tracing::Tracing::off(),
        };
        if tracing.is_on() {
            slog::info!(logger, "tracing on"; "endpoint" => &config.tracing.endpoint,
                "sample_ratio" => config.tracing.sample_ratio);
        }
        let metrics = config
            .metrics
            .enabled
            .then(goex_metrics::Metrics::new)
            .transpose()?;
        // Each MySQL statement of a sampled request is a span when tracing is on.
        let statements = tracing.is_on().then(|| {
            std::sync::Arc::new(super::tracing::TracedStatements(tracing.clone()))
                as std::sync::Arc<dyn goex_database::StatementObserver>
        });
        let database = Database::connect(
            &config.database,
            &config.sqlite,
            &config.mysql,
            logger,
            statements,
        )?;
        // Pool gauges per node, and every checkout timed, when metrics are on.
        let database = match &metrics {
            Some(metrics) => super::metrics::observe_database(database, metrics)?,
            None => database,
        };
        let cache = LocalCache::new(&config.cache);
        let redis = config
            .redis
            .enabled
            .then(|| RedisClient::new(&config.redis))
            .transpose()?
            // Each command of a sampled request is a span when tracing is on.
            .map(|redis| match tracing.is_on() {
                true => redis.with_observer(std::sync::Arc::new(super::tracing::TracedCommands(
                    tracing.clone(),
                ))),
                false => redis,
            });
        let mongo = match config.mongodb.enabled {
            true => Some(MongoClient::new(&config.mongodb).await?),
            false => None,
        };
        let keys = std::sync::Arc::new(goex_jwt::load_or_generate(
            &KeyRingSettings {
                dir: config.certs.dir.clone().into(),
                current: config.certs.cur_key.clone(),
                keys: config.certs.keys.clone(),
                algorithm: config.certs.algorithm,
                issuer: config.auth.issuer.clone(),
                audience: config.auth.audience.clone(),
                leeway: config.auth.leeway,
                max_token_bytes: config.auth.max_token_bytes,
            },
            config.certs.generate_missing,
        )?);
        let grpc_hello = std::sync::Arc::new(crate::repository::rpc::GrpcHello::new(
            &config.grpc_client,
            &config.consul,
            logger,
            metrics.as_ref(),
        ));
        if let Err(reason) = grpc_hello.as_ref() {
            slog::warn!(logger, "gRPC client not available: GET /grpc/hello answers 10002"; "reason" => reason);
        }
        let sms = std::sync::Arc::new(sms_client(config));
        if let (crate::meta::config::SmsProvider::Alibaba, Err(reason)) =
            (config.sms.provider, sms.as_ref())
        {
            slog::warn!(logger, "SMS provider not available: POST /sms/send-code answers 10006"; "reason" => reason);
        }
        let jenkins = std::sync::Arc::new(if config.jenkins.host.trim().is_empty() {
            Err("jenkins.host is empty: Jenkins is not configured".to_owned())
        } else {
            goex_jenkins::JenkinsClient::new(&config.jenkins.settings()).map_err(|e| e.to_string())
        });
        if let Err(reason) = jenkins.as_ref() {
            slog::info!(logger, "Jenkins not available: /jenkins/* answer 10004"; "reason" => reason);
        }
        let consul = std::sync::Arc::new(if config.consul.enabled {
            let c = &config.consul;
            goex_consul::ConsulClient::with_tls(&c.addr, &c.token, c.timeout, &c.tls)
                .map_err(|e| format!("consul.*: {e}"))
        } else {
            Err("consul.enabled is off".to_owned())
        });
        Ok(Infra {
            consul,
            jenkins,
            sms,
            sms_code_secret: sms_code_secret(config, logger),
            grpc_hello,
            database,
            cache,
            redis,
            mongo,
            keys,
            logger: logger.clone(),
            metrics,
            tracing,
        })
    }

    /// Applies pending migrations; returns the versions applied.
    ///
    /// # Errors
    /// The database is unreachable or a migration fails.
    pub async fn migrate(&self) -> Result<Vec<String>, InfraError> {
        Ok(self
            .database
            .migrate(MYSQL_MIGRATIONS, SQLITE_MIGRATIONS)
            .await?)
    }

    /// Closes pools (the wire cleanup functions) and exports the last spans: called once the
    /// server drained, so the spans of its last requests are sent.
    pub async fn close(&self) {
        if let Some(mongo) = &self.mongo {
            mongo.close().await;
        }
        self.database.close();
        if let Some(redis) = &self.redis {
            redis.close();
        }
        if let Err(e) = self.tracing.shutdown().await {
            slog::warn!(self.logger, "the last spans were not exported"; "error" => e);
        }
    }
}
