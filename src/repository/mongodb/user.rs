//! User documents in MongoDB (the original's `SetUserInfo` / `GetUserInfo`, fixed: fetched by
//! user id, errors returned instead of swallowed).

use std::sync::Arc;

use async_trait::async_trait;
use goex_mongo::bson::doc;
use goex_mongo::options::IndexOptions;
use goex_mongo::{IndexModel, MongoError};
use serde::{Deserialize, Serialize};
use shaku::{Component, Interface};

use crate::repository::client::{MongoClientHandle, MongoOperation};
use crate::repository::error::RepoError;
use crate::repository::mongodb::documents::timed;

/// The dependency name in errors and `/readyz`.
pub const MONGODB: &str = "mongodb";

/// The collection holding one document per user.
const COLLECTION: &str = "user_info";

/// One user's document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserDocument {
    /// The user's id (unique index).
    pub user_id: i64,
    /// Login name.
    pub username: String,
    /// 1 male, 2 female, 0 unknown.
    pub gender: i16,
    /// Free-form profile text.
    #[serde(default)]
    pub bio: String,
}

/// Reads and writes user documents.
#[async_trait]
pub trait UserDocumentRepository: Interface {
    /// Whether MongoDB is configured (`mongodb.enabled`); when not, every call is `Ok(None)`.
    fn enabled(&self) -> bool;
    /// Creates the collection's indexes (a unique `user_id`). Idempotent; run at start.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when MongoDB does not answer in time.
    async fn ensure_indexes(&self) -> Result<(), RepoError>;
    /// Inserts or replaces the document of `doc.user_id`.
    ///
    /// # Errors
    /// As [`UserDocumentRepository::ensure_indexes`].
    async fn set_user_info(&self, doc: &UserDocument) -> Result<(), RepoError>;
    /// The document of `user_id`, if any.
    ///
    /// # Errors
    /// As [`UserDocumentRepository::ensure_indexes`].
    async fn get_user_info(&self, user_id: i64) -> Result<Option<UserDocument>, RepoError>;
}

/// [`UserDocumentRepository`] over the official driver.
#[derive(Component)]
#[shaku(interface = UserDocumentRepository)]
pub struct MongoUserDocumentRepository {
    #[shaku(inject)]
    mongo: Arc<dyn MongoClientHandle>,
}

impl MongoUserDocumentRepository {
    /// Awaits `call`, an `operation` on `database`'s user collection, timed and traced.
    async fn timed<T>(
        &self,
        operation: MongoOperation,
        database: &str,
        call: impl Future<Output = Result<T, MongoError>>,
    ) -> Result<T, RepoError> {
        timed(&*self.mongo, operation, database, COLLECTION, call).await
    }
}

#[async_trait]
impl UserDocumentRepository for MongoUserDocumentRepository {
    fn enabled(&self) -> bool {
        self.mongo.client().is_some()
    }

    async fn ensure_indexes(&self) -> Result<(), RepoError> {
        let Some(mongo) = self.mongo.client() else {
            return Ok(());
        };
        let index = IndexModel::builder()
            .keys(doc! { "user_id": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("uk_user_id".to_owned())
                    .build(),
            )
            .build();
        let users = mongo.database().collection::<UserDocument>(COLLECTION);
        self.timed(
            MongoOperation::CreateIndex,
            mongo.database().name(),
            mongo.bounded(users.create_index(index)),
        )
        .await
        .map(|_| ())
    }

    async fn set_user_info(&self, doc: &UserDocument) -> Result<(), RepoError> {
        let Some(mongo) = self.mongo.client() else {
            return Ok(());
        };
        let users = mongo.database().collection::<UserDocument>(COLLECTION);
        let replace = users
            .replace_one(doc! { "user_id": doc.user_id }, doc)
            .upsert(true);
        self.timed(
            MongoOperation::ReplaceOne,
            mongo.database().name(),
            mongo.bounded(replace),
        )
        .await
        .map(|_| ())
    }

    async fn get_user_info(&self, user_id: i64) -> Result<Option<UserDocument>, RepoError> {
        let Some(mongo) = self.mongo.client() else {
            return Ok(None);
        };
        let users = mongo.database().collection::<UserDocument>(COLLECTION);
        let find = users.find_one(doc! { "user_id": user_id });
        self.timed(
            MongoOperation::FindOne,
            mongo.database().name(),
            mongo.bounded(find),
        )
        .await
    }
}
