//! The DI graph (the original's wire `assembly`): the only place that names concrete types.
//! Clients come from [`infra::Infra`] as component parameters; everything else is injected.

pub mod infra;
pub mod metrics;
pub mod tracing;

use std::sync::Arc;

use shaku::{ModuleBuilder, module};
use tokio::sync::Semaphore;

use crate::controller::auth::AuthControllerImpl;
use crate::controller::excel::{ExcelControllerImpl, ExcelControllerImplParameters};
use crate::controller::grpc::bench::BurnRpcControllerImpl;
use crate::controller::grpc::hello::HelloRpcControllerImpl;
use crate::controller::grpc::user::UserRpcControllerImpl;
use crate::controller::grpc_client::GrpcClientControllerImpl;
use crate::controller::health::HealthControllerImpl;
use crate::controller::hello::HelloControllerImpl;
use crate::controller::jenkins::JenkinsControllerImpl;
use crate::controller::pprof::PprofControllerImpl;
use crate::controller::sms::SmsControllerImpl;
use crate::controller::socket::{
    SocketControllerImpl, SocketControllerImplParameters, SocketShared,
};
use crate::meta::config::{AppConfig, LocalLogins, SmsProvider};
use crate::repository::cache::login::LoginCache;
use crate::repository::cache::user::{MokaUserCache, MokaUserCacheParameters};
use crate::repository::client::{
    CacheClientImpl, CacheClientImplParameters, DatabaseClientImpl, DatabaseClientImplParameters,
    MongoClientImpl, MongoClientImplParameters, MongoOperationMetrics,
};
use crate::repository::health::ClientProbe;
use crate::repository::jenkins::{
    JenkinsMetrics, RestJenkinsRepository, RestJenkinsRepositoryParameters,
};
use crate::repository::kv::{
    KeyValueClient, LocalKeyValueClient, LocalStoreLimits, RedisCommandMetrics,
    RedisKeyValueClient, RedisKeyValueClientParameters,
};
use crate::repository::mongodb::user::MongoUserDocumentRepository;
use crate::repository::mysql::import_job::DieselImportJobRepository;
use crate::repository::mysql::role::DieselRoleRepository;
use crate::repository::mysql::token::DieselTokenRepository;
use crate::repository::mysql::user::DieselUserRepository;
use crate::repository::rate_limit::RateLimitStore;
use crate::repository::rate_limit::memory::MemoryRateLimitStore;
use crate::repository::rate_limit::redis::{RateLimitStoreMetrics, RedisRateLimitStore};
use crate::repository::redis::room_bus::RedisRoomBus;
use crate::repository::redis::sms_code::{
    KvVerificationCodeRepository, KvVerificationCodeRepositoryParameters,
};
use crate::repository::redis::throttle::KvLoginThrottleRepository;
use crate::repository::redis::token::{
    KvTokenRepository, KvTokenRepositoryParameters, TokenRepository,
};
use crate::repository::redis::value::KvValueRepository;
use crate::repository::registration::{ConsulServiceRegistry, ConsulServiceRegistryParameters};
use crate::repository::room_bus::{LocalRoomBus, RoomBus};
use crate::repository::rpc::{TonicHelloClient, TonicHelloClientParameters};
use crate::repository::sms::{
    AlibabaSmsSender, AlibabaSmsSenderParameters, LogSmsSender, SmsSender,
};
use crate::service::account::{AccountServiceImpl, AccountServiceImplParameters};
use crate::service::auth::{AuthServiceImpl, AuthServiceImplParameters};
use crate::service::caller::{CallerAuthServiceImpl, CallerAuthServiceImplParameters};
use crate::service::excel::progress::{ImportProgressPushImpl, ImportProgressPushImplParameters};
use crate::service::excel::{ExcelServiceImpl, ExcelServiceImplParameters, RunningJobs};
use crate::service::health::{HealthServiceImpl, HealthServiceImplParameters};
use crate::service::hello::{HelloServiceImpl, HelloServiceImplParameters};
use crate::service::jenkins::{JenkinsServiceImpl, JenkinsServiceImplParameters};
use crate::service::password::{Argon2BulkPasswordHasher, Argon2PasswordHasher};
use crate::service::profiling::{ProfilingServiceImpl, ProfilingServiceImplParameters};
use crate::service::rate_limit::RateLimitServiceImpl;
use crate::service::shedding::{
    AdaptiveLoadShedding, AdaptiveLoadSheddingParameters, SheddingSources,
};
use crate::service::sms::{SmsServiceImpl, SmsServiceImplParameters};
use crate::service::socket::{HubState, SocketHubImpl, SocketHubImplParameters};
use crate::service::user::UserServiceImpl;
// generate:use (`go_example generate` adds its imports above this line)

use self::infra::Infra;

// Every client, repository, service and controller of the applications.
module! {
    pub AppModule {
        components = [
            // clients
            // (RedisKeyValueClient is replaced by LocalKeyValueClient when redis is off,
            // RedisRateLimitStore by MemoryRateLimitStore, RedisRoomBus by LocalRoomBus,
            // AlibabaSmsSender by LogSmsSender
            // when sms.provider is log)
            DatabaseClientImpl, CacheClientImpl, RedisKeyValueClient, MongoClientImpl,
            TonicHelloClient, AlibabaSmsSender, RestJenkinsRepository, RedisRateLimitStore,
            RedisRoomBus,
            // repositories
            DieselUserRepository, DieselRoleRepository, DieselImportJobRepository, MokaUserCache, KvValueRepository, KvTokenRepository,
            MongoUserDocumentRepository, KvLoginThrottleRepository, ClientProbe,
            KvVerificationCodeRepository, ConsulServiceRegistry,
            // services
            HelloServiceImpl, HealthServiceImpl, AuthServiceImpl, AccountServiceImpl,
            CallerAuthServiceImpl,
            Argon2PasswordHasher, Argon2BulkPasswordHasher,
            UserServiceImpl, SocketHubImpl, ExcelServiceImpl, SmsServiceImpl, JenkinsServiceImpl,
            ProfilingServiceImpl, ImportProgressPushImpl, AdaptiveLoadShedding,
            RateLimitServiceImpl,
            // controllers
            HelloControllerImpl, HealthControllerImpl, AuthControllerImpl,
            GrpcClientControllerImpl, ExcelControllerImpl, SmsControllerImpl,
            JenkinsControllerImpl, HelloRpcControllerImpl, UserRpcControllerImpl,
            SocketControllerImpl, PprofControllerImpl,
            BurnRpcControllerImpl,
            // generate:components (`go_example generate` adds its components above this line)
        ],
        providers = []
    }
}

/// The job `POST /jenkins/jobs` creates (the original's `assets/job.xml`).
const JOB_TEMPLATE: &str = include_str!("../../assets/jenkins/job.xml");

/// Changes made to the module before it is built: tests put a component in place of the
/// assembled one (`with_component_override`, which wins over any parameters) for states real
/// servers cannot be put in on demand, such as an overloaded CPU.
pub type Customize<'a> =
    Box<dyn FnOnce(ModuleBuilder<AppModule>, &Infra) -> ModuleBuilder<AppModule> + Send + 'a>;

/// Builds the module from config and the built clients.
///
/// # Panics
/// When `auth.argon2_*` are not valid argon2 parameters (checked when the config loads).
pub fn build(config: &AppConfig, infra: &Infra) -> Arc<AppModule> {
    build_customized(config, infra, Box::new(|builder, _| builder))
}

/// [`build`], with `customize` applied to the builder before the module is built.
///
/// # Panics
/// As [`build`].
pub fn build_customized(
    config: &AppConfig,
    infra: &Infra,
    customize: Customize<'_>,
) -> Arc<AppModule> {
    let hasher = Argon2PasswordHasher::parameters(&config.auth)
        .unwrap_or_else(|e| panic!("auth.argon2_* rejected by argon2: {e}"));
    let bulk_hasher = Argon2BulkPasswordHasher::parameters(&config.auth, &config.excel)
        .unwrap_or_else(|e| panic!("auth.argon2_* rejected by argon2: {e}"));
    let excel = Arc::new(config.excel.clone());
    let login_lookups = || infra.metrics.as_ref().map(|m| m.cache_lookups("logins"));
    let builder = match &infra.redis {
        Some(client) => AppModule::builder()
            // Shared by every instance; when Redis does not answer, rate_limit.on_store_error.
            .with_component_parameters::<RedisRateLimitStore>(RedisRateLimitStore::parameters(
                client.clone(),
                config.rate_limit.clone(),
                MemoryRateLimitStore::new(&config.rate_limit),
                infra
                    .metrics
                    .as_ref()
                    .map(|m| RateLimitStoreMetrics::new(m, &config.rate_limit)),
                infra.logger.clone(),
            ))
            .with_component_parameters::<RedisKeyValueClient>(RedisKeyValueClientParameters {
                client: client.clone(),
                metrics: infra.metrics.as_ref().map(RedisCommandMetrics::new),
            })
            // Rooms span the socket app's instances.
            .with_component_parameters::<RedisRoomBus>(RedisRoomBus::parameters(
                client.clone(),
                goex_redis::pubsub::Subscriptions::new(&config.redis)
                    .unwrap_or_else(|e| panic!("redis settings checked at start: {e}")),
                config.server.socket.bus_queue,
                config.server.socket.max_message_size,
                infra.metrics.as_ref().map(goex_metrics::Metrics::socket),
                infra.logger.clone(),
            ))
            .with_component_parameters::<KvTokenRepository>(KvTokenRepositoryParameters {
                cache: LoginCache::timed(
                    config.auth.login_cache_ttl,
                    config.auth.login_cache_capacity,
                    login_lookups(),
                ),
            }),
        // The embedded default: the same repositories over an in-process store.
        None => AppModule::builder()
            .with_component_override::<dyn KeyValueClient>(Box::new(LocalKeyValueClient::new(
                LocalStoreLimits {
                    values: config.cache.max_capacity as usize,
                    logins: config.auth.max_local_logins,
                    counters: config.auth.max_local_counters,
                },
            )))
            .with_component_override::<dyn RateLimitStore>(Box::new(MemoryRateLimitStore::new(
                &config.rate_limit,
            )))
            .with_component_override::<dyn RoomBus>(Box::new(LocalRoomBus)),
    };
    // Without Redis, login records go where every process sees them (the database), unless
    // configured to stay in memory.
    let builder = if infra.redis.is_none() && config.auth.local_logins == LocalLogins::Database {
        // SQLite's records are kept while the file is unchanged; MySQL's are read every time.
        let cache = match infra.database.change_watch() {
            Some(watch) => {
                LoginCache::versioned(watch, config.auth.login_cache_capacity, login_lookups())
            }
            None => LoginCache::off(),
        };
        builder.with_component_override::<dyn TokenRepository>(Box::new(
            DieselTokenRepository::new(infra.database.clone(), cache),
        ))
    } else {
        builder
    };
    let sms_metrics = |provider: &str| {
        infra
            .metrics
            .as_ref()
            .map(|m| m.sms_send(provider, &goex_sms::SmsError::KINDS))
    };
    let builder = match config.sms.provider {
        SmsProvider::Alibaba => {
            builder.with_component_parameters::<AlibabaSmsSender>(AlibabaSmsSenderParameters {
                client: infra.sms.clone(),
                code: config.alibaba_sms_code.clone(),
                metrics: sms_metrics("alibaba"),
                logger: infra.logger.clone(),
                tracing: infra.tracing.clone(),
            })
        }
        SmsProvider::Log => builder.with_component_override::<dyn SmsSender>(Box::new(
            LogSmsSender::new(infra.logger.clone(), sms_metrics("log")),
        )),
    };
    let builder =
        builder.with_component_parameters::<AdaptiveLoadShedding>(AdaptiveLoadSheddingParameters {
            settings: config.shedding.clone(),
            sources: SheddingSources::Process,
            metrics: infra.metrics.clone(),
            started: Default::default(),
        });
    let builder = customize(builder, infra);
    Arc::new(
        builder
            .with_component_parameters::<DatabaseClientImpl>(DatabaseClientImplParameters {
                db: infra.database.clone(),
            })
            .with_component_parameters::<MongoClientImpl>(MongoClientImplParameters {
                client: infra.mongo.clone(),
                // Series only for a MongoDB that is configured.
                metrics: infra
                    .metrics
                    .as_ref()
                    .filter(|_| infra.mongo.is_some())
                    .map(MongoOperationMetrics::new),
                tracing: infra.tracing.clone(),
            })
            .with_component_parameters::<TonicHelloClient>(TonicHelloClientParameters {
                client: infra.grpc_hello.clone(),
                tracing: infra.tracing.clone(),
            })
            .with_component_parameters::<CacheClientImpl>(CacheClientImplParameters {
                cache: infra.cache.clone(),
            })
            .with_component_parameters::<MokaUserCache>(MokaUserCacheParameters {
                family: config.cache_keys.user_info.clone(),
                metrics: infra.metrics.clone(),
            })
            .with_component_parameters::<HelloServiceImpl>(HelloServiceImplParameters {
                cache_keys: config.cache_keys.clone(),
                mode: config.server.mode.as_str().into(),
            })
            .with_component_parameters::<AuthServiceImpl>(AuthServiceImplParameters {
                keys: infra.keys.clone(),
                auth: config.auth.clone(),
                sms: config.sms.clone(),
                verified: Arc::new(goex_cache::ExpiringCache::new(
                    config.auth.verified_token_capacity,
                )),
                logger: infra.logger.clone(),
                metrics: infra.metrics.clone(),
            })
            .with_component_parameters::<CallerAuthServiceImpl>(CallerAuthServiceImplParameters {
                grpc_auth: config.server.grpc.auth.clone(),
                auth: config.auth.clone(),
                refused: Arc::new(goex_cache::ExpiringCache::new(
                    config.auth.max_local_counters,
                )),
                logger: infra.logger.clone(),
            })
            .with_component_parameters::<AccountServiceImpl>(AccountServiceImplParameters {
                logger: infra.logger.clone(),
            })
            .with_component_parameters::<Argon2PasswordHasher>(hasher)
            .with_component_parameters::<Argon2BulkPasswordHasher>(bulk_hasher)
            .with_component_parameters::<SocketHubImpl>(SocketHubImplParameters {
                socket: Arc::new(config.server.socket.clone()),
                state: HubState::default(),
            })
            .with_component_parameters::<ExcelServiceImpl>(ExcelServiceImplParameters {
                excel: excel.clone(),
                running_exports: Arc::new(Semaphore::new(config.excel.max_running_exports)),
                running_imports: Arc::new(Semaphore::new(config.excel.max_running_imports)),
                running_jobs: RunningJobs::default(),
                metrics: infra
                    .metrics
                    .as_ref()
                    .map(goex_metrics::Metrics::import_jobs),
            })
            .with_component_parameters::<ExcelControllerImpl>(ExcelControllerImplParameters {
                config: excel.clone(),
            })
            .with_component_parameters::<KvVerificationCodeRepository>(
                KvVerificationCodeRepositoryParameters {
                    secret: infra.sms_code_secret.clone(),
                },
            )
            .with_component_parameters::<SmsServiceImpl>(SmsServiceImplParameters {
                sms: config.sms.clone(),
                logger: infra.logger.clone(),
                metrics: infra.metrics.clone(),
            })
            .with_component_parameters::<RestJenkinsRepository>(RestJenkinsRepositoryParameters {
                client: infra.jenkins.clone(),
                metrics: infra.metrics.as_ref().map(JenkinsMetrics::new),
                tracing: infra.tracing.clone(),
            })
            .with_component_parameters::<JenkinsServiceImpl>(JenkinsServiceImplParameters {
                config: config.jenkins.clone(),
                job_template: JOB_TEMPLATE.into(),
            })
            .with_component_parameters::<SocketControllerImpl>(SocketControllerImplParameters {
                shared: Arc::new(SocketShared {
                    socket: config.server.socket.clone(),
                    logger: infra.logger.clone(),
                    metrics: infra.metrics.as_ref().map(goex_metrics::Metrics::socket),
                    tracing: infra.tracing.clone(),
                }),
                common: config.common.clone(),
            })
            .with_component_parameters::<ImportProgressPushImpl>(ImportProgressPushImplParameters {
                excel,
                logger: infra.logger.clone(),
                tracing: infra.tracing.clone(),
            })
            .with_component_parameters::<HealthServiceImpl>(HealthServiceImplParameters {
                server: Arc::new(config.server.clone()),
            })
            .with_component_parameters::<ConsulServiceRegistry>(ConsulServiceRegistryParameters {
                client: infra.consul.clone(),
                config: config.consul.clone(),
                logger: infra.logger.clone(),
            })
            .with_component_parameters::<ProfilingServiceImpl>(ProfilingServiceImplParameters {
                settings: config.pprof.clone(),
            })
            .with_component_parameters::<RateLimitServiceImpl>(RateLimitServiceImpl::parameters(
                &config.rate_limit,
                infra.metrics.as_ref(),
            ))
            .build(),
    )
}
