//! The DI graph (the original's wire `assembly`): the only place that names concrete types.
//! Clients come from [`infra::Infra`] as component parameters; everything else is injected.

pub mod infra;

use std::sync::Arc;

use shaku::module;

use crate::controller::health::HealthControllerImpl;
use crate::controller::hello::HelloControllerImpl;
use crate::meta::config::AppConfig;
use crate::repository::cache::user::{MokaUserCache, MokaUserCacheParameters};
use crate::repository::client::{
    CacheClientImpl, CacheClientImplParameters, DatabaseClientImpl, DatabaseClientImplParameters,
    MongoClientImpl, MongoClientImplParameters,
};
use crate::repository::health::ClientProbe;
use crate::repository::kv::{
    KeyValueClient, LocalKeyValueClient, RedisKeyValueClient, RedisKeyValueClientParameters,
};
use crate::repository::mongodb::user::MongoUserDocumentRepository;
use crate::repository::mysql::user::DieselUserRepository;
use crate::repository::redis::token::KvTokenRepository;
use crate::repository::redis::value::KvValueRepository;
use crate::service::health::{HealthServiceImpl, HealthServiceImplParameters};
use crate::service::hello::{HelloServiceImpl, HelloServiceImplParameters};

use self::infra::Infra;

// Every client, repository, service and controller of the applications.
module! {
    pub AppModule {
        components = [
            // clients
            // (RedisKeyValueClient is replaced by LocalKeyValueClient when redis is off)
            DatabaseClientImpl, CacheClientImpl, RedisKeyValueClient, MongoClientImpl,
            // repositories
            DieselUserRepository, MokaUserCache, KvValueRepository, KvTokenRepository,
            MongoUserDocumentRepository, ClientProbe,
            // services
            HelloServiceImpl, HealthServiceImpl,
            // controllers
            HelloControllerImpl, HealthControllerImpl,
        ],
        providers = []
    }
}

/// Builds the module from config and the built clients.
pub fn build(config: &AppConfig, infra: &Infra) -> Arc<AppModule> {
    let builder = match &infra.redis {
        Some(client) => AppModule::builder().with_component_parameters::<RedisKeyValueClient>(
            RedisKeyValueClientParameters {
                client: client.clone(),
            },
        ),
        // The embedded default: the same repositories over an in-process store.
        None => AppModule::builder().with_component_override::<dyn KeyValueClient>(Box::new(
            LocalKeyValueClient::new(config.cache.max_capacity as usize),
        )),
    };
    Arc::new(
        builder
            .with_component_parameters::<DatabaseClientImpl>(DatabaseClientImplParameters {
                db: infra.database.clone(),
            })
            .with_component_parameters::<MongoClientImpl>(MongoClientImplParameters {
                client: infra.mongo.clone(),
            })
            .with_component_parameters::<CacheClientImpl>(CacheClientImplParameters {
                cache: infra.cache.clone(),
            })
            .with_component_parameters::<MokaUserCache>(MokaUserCacheParameters {
                family: config.cache_keys.user_info.clone(),
            })
            .with_component_parameters::<HelloServiceImpl>(HelloServiceImplParameters {
                mode: config.server.mode.as_str().into(),
                value_key: config.cache_keys.hello_value.key.clone(),
            })
            .with_component_parameters::<HealthServiceImpl>(HealthServiceImplParameters {
                timeout: config.server.readiness_timeout,
            })
            .build(),
    )
}
