//! `/hello`: the original's greeting with cache-aside user lookup
//! (local cache, then the database, then fill the cache).

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use shaku::{Component, Interface};

use crate::meta::config::CacheKeys;
use crate::repository::cache::user::UserCacheRepository;
use crate::repository::mongodb::user::{UserDocument, UserDocumentRepository};
use crate::repository::mysql::user::UserRepository;
use crate::repository::redis::value::ValueRepository;
use crate::repository::rpc::{HelloRpcClient, RpcError};
use crate::service::error::ServiceError;

/// What `/hello` answers (the original's map, field for field).
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Greeting {
    /// The greeting.
    #[schema(example = "world")]
    pub hello: &'static str,
    /// `server.mode`.
    #[schema(value_type = String, example = "debug")]
    pub env: Arc<str>,
    /// The user's name, empty when there is no such user (as in the original).
    pub user: String,
    /// The value under `cacheKeys.helloValue.key` in Redis (or the in-process store), empty
    /// when unset (the original's `GetValue("aa")`).
    pub value: String,
    /// The user's MongoDB document (`null` when there is none); absent when MongoDB is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<UserDocument>, required = false)]
    pub document: Option<Option<UserDocument>>,
}

/// The hello use case.
#[async_trait]
pub trait HelloService: Interface {
    /// Greets, naming user `id` when it exists.
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] when the user is not cached and the database is down, or
    /// when Redis is down.
    async fn say_hello(&self, id: u64) -> Result<Greeting, ServiceError>;

    /// `SayHello(id)` on the gRPC app, through the client and its breaker (`GET /grpc/hello`),
    /// for the end user at `client` (forwarded to the gRPC app, whose rate limits count it).
    /// How many calls one address may make is the `rate_limit` rule `grpc-hello`.
    ///
    /// # Errors
    /// [`ServiceError::Certificate`], [`ServiceError::Unavailable`] (unreachable),
    /// [`ServiceError::CircuitOpen`], [`ServiceError::Downstream`].
    async fn say_hello_remote(&self, id: i32, client: IpAddr) -> Result<String, ServiceError>;

    /// The gRPC `SayHello` answer, as the original's: `hello world` for id 1, else
    /// `hello gRPC`.
    fn rpc_greeting(&self, id: i32) -> &'static str {
        if id == 1 { "hello world" } else { "hello gRPC" }
    }

    /// Creates the indexes of the user documents [`HelloService::say_hello`] reads (the HTTP
    /// app, at start); `Ok(false)` when MongoDB is off.
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] when MongoDB cannot be reached.
    async fn ensure_document_indexes(&self) -> Result<bool, ServiceError>;
}

/// [`HelloService`] over the user repositories.
#[derive(Component)]
#[shaku(interface = HelloService)]
pub struct HelloServiceImpl {
    #[shaku(inject)]
    users: Arc<dyn UserRepository>,
    #[shaku(inject)]
    user_cache: Arc<dyn UserCacheRepository>,
    #[shaku(inject)]
    values: Arc<dyn ValueRepository>,
    #[shaku(inject)]
    documents: Arc<dyn UserDocumentRepository>,
    #[shaku(inject)]
    rpc: Arc<dyn HelloRpcClient>,
    /// `cacheKeys.*`: the key of the value `/hello` reads (`helloValue.key`).
    cache_keys: CacheKeys,
    /// `server.mode`, reported as `env` (shared, not copied per request: the one value of
    /// `server.*` this service reads).
    mode: Arc<str>,
}

#[async_trait]
impl HelloService for HelloServiceImpl {
    async fn say_hello(&self, id: u64) -> Result<Greeting, ServiceError> {
        let user = match i64::try_from(id) {
            Ok(0) | Err(_) => String::new(),
            Ok(id) => match self.user_cache.get(id) {
                Some(user) => user.username,
                None => match self.users.find(id).await? {
                    Some(user) => {
                        self.user_cache.set(&user);
                        user.username
                    }
                    None => String::new(),
                },
            },
        };
        let value = self
            .values
            .get(&self.cache_keys.hello_value.key)
            .await?
            .unwrap_or_default();
        let document = match (self.documents.enabled(), i64::try_from(id)) {
            (true, Ok(id)) if id > 0 => Some(self.documents.get_user_info(id).await?),
            (true, _) => Some(None),
            (false, _) => None,
        };
        Ok(Greeting {
            hello: "world，rust",
            env: self.mode.clone(),
            user,
            value,
            document,
        })
    }

    async fn ensure_document_indexes(&self) -> Result<bool, ServiceError> {
        if !self.documents.enabled() {
            return Ok(false);
        }
        self.documents.ensure_indexes().await?;
        Ok(true)
    }

    async fn say_hello_remote(&self, id: i32, client: IpAddr) -> Result<String, ServiceError> {
        const DEPENDENCY: &str = "grpc hello.HelloService";
        self.rpc
            .say_hello_for(id, Some(client))
            .await
            .map_err(|e| match e {
                RpcError::Certificate(reason) => ServiceError::Certificate {
                    dependency: DEPENDENCY,
                    reason,
                },
                RpcError::Unreachable(_) => ServiceError::Unavailable {
                    dependency: DEPENDENCY,
                    source: Box::new(e),
                },
                RpcError::Open(_) => ServiceError::CircuitOpen {
                    dependency: DEPENDENCY,
                },
                RpcError::Call(_) => ServiceError::Downstream {
                    dependency: DEPENDENCY,
                    source: Box::new(e),
                },
            })
    }
}
