//! Collections of documents numbered like rows, for the repositories `go_example generate
//! resource --mongo` writes (docs/generator.md): `_id` 1, 2, 3, ... from a counter document
//! (`counters`, one per collection, `$inc` in one atomic `find_one_and_update`), keyset pages by
//! `_id`, unique indexes named `uk_<collection>_<field>` (a duplicate is a conflict naming the
//! field), and every operation timed and traced like the user documents' (the operation and the
//! collection, never a filter or a document).

use bigdecimal::BigDecimal;
use chrono::NaiveDateTime;
use futures_util::TryStreamExt;
use goex_mongo::bson::{self, Bson, Document, doc};
use goex_mongo::options::{IndexOptions, ReturnDocument};
use goex_mongo::{IndexModel, MongoClient, MongoError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::repository::client::{MongoClientHandle, MongoOperation};
use crate::repository::error::RepoError;
use crate::repository::mongodb::user::MONGODB;

/// The collection of the id counters: `{_id: <collection>, seq: <last id>}`.
pub const COUNTERS: &str = "counters";

/// A unique field of a collection.
#[derive(Clone, Copy, Debug)]
pub struct UniqueField {
    /// The field.
    pub name: &'static str,
    /// For a field that may be null: the BSON type of its values (`string`, `int`, `long`,
    /// `bool`, `date`). Its index then holds only those, so that documents without a value do
    /// not clash with each other, as NULLs do not in a SQL unique key.
    pub optional_type: Option<&'static str>,
}

/// One collection of numbered documents.
pub struct Documents<'a> {
    mongo: &'a dyn MongoClientHandle,
    client: &'a MongoClient,
    collection: &'static str,
    unique: &'static [UniqueField],
}

/// The BSON date of an instant (milliseconds: the forms of `--mongo` resources refuse a finer
/// fraction, so nothing is cut).
pub fn bson_date(instant: &NaiveDateTime) -> bson::DateTime {
    bson::DateTime::from_millis(instant.and_utc().timestamp_millis())
}

/// The instant of a BSON date.
///
/// # Errors
/// [`RepoError::Internal`] for a date chrono cannot hold (not one this code wrote).
pub fn naive(date: bson::DateTime) -> Result<NaiveDateTime, RepoError> {
    chrono::DateTime::from_timestamp_millis(date.timestamp_millis())
        .map(|t| t.naive_utc())
        .ok_or_else(|| RepoError::Internal(format!("a date out of range: {date}").into()))
}

/// The decimal of its stored text.
///
/// # Errors
/// [`RepoError::Internal`] for text that is not a decimal (not one this code wrote).
pub fn decimal(text: &str) -> Result<BigDecimal, RepoError> {
    text.parse()
        .map_err(|_| RepoError::Internal(format!("not a decimal: {text:?}").into()))
}

/// The errors of the driver as the repositories report them.
pub(crate) fn repo_error(e: MongoError) -> RepoError {
    match e {
        MongoError::Unavailable(_) => RepoError::Unavailable {
            dependency: MONGODB,
            source: Box::new(e),
        },
        MongoError::Duplicate(m) => RepoError::Conflict(m),
        other => RepoError::Internal(Box::new(other)),
    }
}

/// Awaits `call`, an `operation` on `collection` of `database`, timing it when metrics are on
/// and in a span when the request is traced.
///
/// # Errors
/// The call's, as a [`RepoError`].
pub(crate) async fn timed<T>(
    mongo: &dyn MongoClientHandle,
    operation: MongoOperation,
    database: &str,
    collection: &'static str,
    call: impl Future<Output = Result<T, MongoError>>,
) -> Result<T, RepoError> {
    let timed = goex_metrics::timed(mongo.metrics(operation), MongoError::kind, call);
    let describe = |span: &mut goex_tracing::Span| {
        use goex_tracing::KeyValue;
        span.rename(format!("{} {collection}", operation.label()));
        span.set_attributes([
            KeyValue::new("db.system.name", "mongodb"),
            KeyValue::new("db.operation.name", operation.label()),
            KeyValue::new("db.collection.name", collection),
            KeyValue::new("db.namespace", database.to_owned()),
        ]);
    };
    mongo
        .tracing()
        .traced("mongodb", describe, MongoError::kind, timed)
        .await
        .map_err(repo_error)
}

impl<'a> Documents<'a> {
    /// `collection` of the configured database.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when MongoDB is not configured (`mongodb.enabled`): the
    /// resource's calls answer 503.
    pub fn of(
        mongo: &'a dyn MongoClientHandle,
        collection: &'static str,
        unique: &'static [UniqueField],
    ) -> Result<Self, RepoError> {
        let client = mongo.client().ok_or_else(|| RepoError::Unavailable {
            dependency: MONGODB,
            source: "mongodb.enabled is false".into(),
        })?;
        Ok(Self {
            mongo,
            client,
            collection,
            unique,
        })
    }

    /// A duplicate key as a conflict naming the unique field.
    fn named(&self, e: RepoError) -> RepoError {
        let names: Vec<&str> = self.unique.iter().map(|u| u.name).collect();
        e.named_conflict(self.collection, &names)
    }

    async fn timed<T>(
        &self,
        operation: MongoOperation,
        collection: &'static str,
        call: impl Future<Output = Result<T, MongoError>>,
    ) -> Result<T, RepoError> {
        timed(
            self.mongo,
            operation,
            self.client.database().name(),
            collection,
            call,
        )
        .await
    }

    fn typed<T: Send + Sync>(&self) -> goex_mongo::Collection<T> {
        self.client.database().collection::<T>(self.collection)
    }

    /// Creates the unique indexes (`uk_<collection>_<field>`). Idempotent.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when MongoDB does not answer in time.
    pub async fn ensure_indexes(&self) -> Result<(), RepoError> {
        for field in self.unique {
            let mut options = IndexOptions::builder()
                .unique(true)
                .name(format!("uk_{}_{}", self.collection, field.name))
                .build();
            if let Some(kind) = field.optional_type {
                options.partial_filter_expression = Some(doc! { field.name: { "$type": kind } });
            }
            let index = IndexModel::builder()
                .keys(doc! { field.name: 1 })
                .options(options)
                .build();
            let collection = self.typed::<Document>();
            let create = collection.create_index(index);
            self.timed(
                MongoOperation::CreateIndex,
                self.collection,
                self.client.bounded(create),
            )
            .await?;
        }
        Ok(())
    }

    /// The next id of the collection: 1 for the first document. Atomic: concurrent callers get
    /// distinct ids (`$inc` on the counter in one `find_one_and_update`).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when MongoDB does not answer in time.
    pub async fn next_id(&self) -> Result<i64, RepoError> {
        let counters = self.client.database().collection::<Document>(COUNTERS);
        let key = doc! { "_id": self.collection };
        for _ in 0..2 {
            let next = counters
                .find_one_and_update(key.clone(), doc! { "$inc": { "seq": 1_i64 } })
                .return_document(ReturnDocument::After);
            let counter = self
                .timed(
                    MongoOperation::FindOneAndUpdate,
                    COUNTERS,
                    self.client.bounded(next),
                )
                .await?;
            match counter.as_ref().map(|c| c.get("seq")) {
                Some(Some(Bson::Int64(seq))) => return Ok(*seq),
                Some(Some(Bson::Int32(seq))) => return Ok(i64::from(*seq)),
                Some(_) => break,
                None => {}
            }
            // The collection's first id: its counter is made (at 0) once, then incremented like
            // any other. An upsert racing another maker may be refused as a duplicate `_id`:
            // the counter exists either way. (Incrementing with `upsert` instead answers nothing
            // to a racing caller on some servers.)
            let make = counters
                .find_one_and_update(key.clone(), doc! { "$setOnInsert": { "seq": 0_i64 } })
                .upsert(true);
            match self
                .timed(
                    MongoOperation::FindOneAndUpdate,
                    COUNTERS,
                    self.client.bounded(make),
                )
                .await
            {
                Ok(_) | Err(RepoError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(RepoError::Internal(
            format!(
                "the {COUNTERS} document of {} holds no seq",
                self.collection
            )
            .into(),
        ))
    }

    /// The document `id`, if any.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when MongoDB does not answer in time.
    pub async fn find<T>(&self, id: i64) -> Result<Option<T>, RepoError>
    where
        T: DeserializeOwned + Send + Sync,
    {
        let collection = self.typed::<T>();
        let find = collection.find_one(doc! { "_id": id });
        self.timed(
            MongoOperation::FindOne,
            self.collection,
            self.client.bounded(find),
        )
        .await
    }

    /// Up to `limit` documents with ids above `after`, by id.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when MongoDB does not answer in time.
    pub async fn page<T>(&self, after: i64, limit: i64) -> Result<Vec<T>, RepoError>
    where
        T: DeserializeOwned + Send + Sync,
    {
        let collection = self.typed::<T>();
        let find = async move {
            collection
                .find(doc! { "_id": { "$gt": after } })
                .sort(doc! { "_id": 1 })
                .limit(limit)
                .await?
                .try_collect::<Vec<T>>()
                .await
        };
        self.timed(
            MongoOperation::Find,
            self.collection,
            self.client.bounded(find),
        )
        .await
    }

    /// Inserts `document`.
    ///
    /// # Errors
    /// [`RepoError::Conflict`] naming the field whose unique index refuses it;
    /// [`RepoError::Unavailable`].
    pub async fn insert<T>(&self, document: &T) -> Result<(), RepoError>
    where
        T: Serialize + Send + Sync,
    {
        let collection = self.typed::<T>();
        let insert = collection.insert_one(document);
        self.timed(
            MongoOperation::InsertOne,
            self.collection,
            self.client.bounded(insert),
        )
        .await
        .map(|_| ())
        .map_err(|e| self.named(e))
    }

    /// Sets the fields of `values` and `updated_at` on document `id`, in one operation; returns
    /// the document after it, or `None` when there is none.
    ///
    /// # Errors
    /// [`RepoError::Conflict`] naming the field whose unique index refuses it;
    /// [`RepoError::Unavailable`]; [`RepoError::Internal`] when `values` is not a document.
    pub async fn set<T>(
        &self,
        id: i64,
        values: &impl Serialize,
        updated_at: bson::DateTime,
    ) -> Result<Option<T>, RepoError>
    where
        T: DeserializeOwned + Send + Sync,
    {
        let mut fields = bson::to_document(values).map_err(|e| RepoError::Internal(Box::new(e)))?;
        fields.insert("updated_at", updated_at);
        let collection = self.typed::<T>();
        let update = collection
            .find_one_and_update(doc! { "_id": id }, doc! { "$set": fields })
            .return_document(ReturnDocument::After);
        self.timed(
            MongoOperation::FindOneAndUpdate,
            self.collection,
            self.client.bounded(update),
        )
        .await
        .map_err(|e| self.named(e))
    }

    /// Deletes document `id`; returns whether there was one.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when MongoDB does not answer in time.
    pub async fn delete(&self, id: i64) -> Result<bool, RepoError> {
        let collection = self.typed::<Document>();
        let delete = collection.delete_one(doc! { "_id": id });
        self.timed(
            MongoOperation::DeleteOne,
            self.collection,
            self.client.bounded(delete),
        )
        .await
        .map(|result| result.deleted_count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_decimals_read_back_as_written() {
        let instant = chrono::DateTime::from_timestamp_millis(1_796_637_600_250)
            .unwrap()
            .naive_utc();
        assert_eq!(naive(bson_date(&instant)).unwrap(), instant);
        assert!(naive(bson::DateTime::MAX).is_err());
        assert_eq!(
            decimal("12.5000").unwrap(),
            "12.5".parse::<BigDecimal>().unwrap()
        );
        assert!(decimal("twelve").is_err());
    }
}
