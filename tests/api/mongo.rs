//! User documents through the real `mongodb` driver against a MongoDB wire-protocol server
//! (SecantusDB, started by `scripts/services.sh up`), a fresh database per test.

use std::time::{Duration, Instant};

use go_example::repository::error::RepoError;
use go_example::repository::mongodb::user::{UserDocument, UserDocumentRepository};
use shaku::HasComponent;

use crate::helpers::{
    TestApp, assert_envelope, seed_user, service_env, spawn_app, spawn_app_with, unique_name,
};

async fn spawn_on_mongo() -> Option<TestApp> {
    let addr = service_env("APP__MONGODB__ADDR")?;
    let database = unique_name("go_example_t");
    Some(
        spawn_app_with(&[
            ("APP__MONGODB__ENABLED", "true".into()),
            ("APP__MONGODB__ADDR", addr),
            ("APP__MONGODB__DATABASE", database),
        ])
        .await,
    )
}

fn doc(user_id: i64, username: &str, bio: &str) -> UserDocument {
    UserDocument {
        user_id,
        username: username.into(),
        gender: 2,
        bio: bio.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_documents_round_trip_with_a_unique_index() {
    let Some(app) = spawn_on_mongo().await else {
        return;
    };
    let docs: &dyn UserDocumentRepository = app.module.resolve_ref();
    assert!(docs.enabled());
    assert_eq!(docs.get_user_info(7).await.unwrap(), None);
    docs.set_user_info(&doc(7, "mongo001", "first"))
        .await
        .unwrap();
    docs.set_user_info(&doc(7, "mongo001", "second"))
        .await
        .unwrap();
    docs.set_user_info(&doc(8, "mongo002", "other"))
        .await
        .unwrap();
    assert_eq!(
        docs.get_user_info(7).await.unwrap(),
        Some(doc(7, "mongo001", "second")),
        "upserted by id"
    );
    assert_eq!(
        docs.get_user_info(8).await.unwrap().unwrap().username,
        "mongo002"
    );
    // The index made at start is unique: running it again is idempotent.
    docs.ensure_indexes().await.unwrap();

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(
        (status, body["checks"]["mongodb"].as_str()),
        (200, Some("up")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unique_index_refuses_a_second_document_for_a_user() {
    let Some(app) = spawn_on_mongo().await else {
        return;
    };
    let docs: &dyn UserDocumentRepository = app.module.resolve_ref();
    docs.set_user_info(&doc(9, "mongo009", "")).await.unwrap();
    // A raw insert of the same user_id bypasses the upsert and must hit the unique index.
    let client: &dyn go_example::repository::client::MongoClientHandle = app.module.resolve_ref();
    let mongo = client.client().unwrap();
    let users = mongo.database().collection::<UserDocument>("user_info");
    let err = mongo
        .bounded(users.insert_one(doc(9, "dup", "")))
        .await
        .unwrap_err();
    assert!(matches!(err, goex_mongo::MongoError::Duplicate(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_shows_the_users_document() {
    let Some(app) = spawn_on_mongo().await else {
        return;
    };
    let id = seed_user(&app, "mongohello").await;
    let (_, body) = app.get_json(&format!("/hello?id={id}")).await;
    assert!(body["document"].is_null(), "no document yet: {body}");
    let docs: &dyn UserDocumentRepository = app.module.resolve_ref();
    docs.set_user_info(&doc(id, "mongohello", "hi"))
        .await
        .unwrap();
    let (status, body) = app.get_json(&format!("/hello?id={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["user"], "mongohello");
    assert_eq!(body["document"]["bio"], "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mongodb_hello_has_no_document() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/hello?id=1").await;
    assert_eq!(status, 200);
    assert!(body.get("document").is_none(), "{body}");
    let docs: &dyn UserDocumentRepository = app.module.resolve_ref();
    assert!(!docs.enabled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_down_answers_503_in_time() {
    let app = spawn_app_with(&[
        ("APP__MONGODB__ENABLED", "true".into()),
        (
            "APP__MONGODB__ADDR",
            "mongodb://127.0.0.1:1/?directConnection=true".into(),
        ),
        ("APP__MONGODB__CONNECT_TIMEOUT", "300ms".into()),
        ("APP__MONGODB__COMMAND_TIMEOUT", "800ms".into()),
    ])
    .await;
    let started = Instant::now();
    let (status, body) = app.get_json("/hello?id=3").await;
    assert_eq!(status, 503, "{body}");
    assert!(assert_envelope(&body, "10004").contains("mongodb"));
    assert!(started.elapsed() < Duration::from_secs(3));
    let docs: &dyn UserDocumentRepository = app.module.resolve_ref();
    assert!(matches!(
        docs.get_user_info(3).await,
        Err(RepoError::Unavailable {
            dependency: "mongodb",
            ..
        })
    ));
    assert_eq!(
        app.get_json("/hello").await.0,
        200,
        "routes without a user id need no document"
    );
}

/// The id counter of generated `--mongo` resources: ids taken in parallel are distinct and
/// consecutive; an optional unique field's index lets several documents go without a value; a
/// duplicate is a conflict naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbered_documents_take_distinct_ids_in_parallel_and_name_a_duplicate() {
    use go_example::repository::client::MongoClientHandle;
    use go_example::repository::mongodb::documents::{Documents, UniqueField};
    let Some(app) = spawn_on_mongo().await else {
        return;
    };
    const UNIQUE: &[UniqueField] = &[
        UniqueField {
            name: "code",
            optional_type: None,
        },
        UniqueField {
            name: "slug",
            optional_type: Some("string"),
        },
    ];
    let mongo: &dyn MongoClientHandle = app.module.resolve_ref();
    let documents = Documents::of(mongo, "gadgets", UNIQUE).unwrap();
    let ids = futures_util::future::join_all((0..20).map(|_| documents.next_id())).await;
    let mut ids: Vec<i64> = ids.into_iter().map(Result::unwrap).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());

    documents.ensure_indexes().await.unwrap();
    let gadget = |id: i64, code: &str, slug: Option<&str>| serde_json::json!({ "_id": id, "code": code, "slug": slug });
    documents.insert(&gadget(1, "a", None)).await.unwrap();
    documents.insert(&gadget(2, "b", None)).await.unwrap();
    documents.insert(&gadget(3, "c", Some("s"))).await.unwrap();
    for (duplicate, field) in [
        (gadget(4, "a", None), "code"),
        (gadget(5, "d", Some("s")), "slug"),
    ] {
        match documents.insert(&duplicate).await {
            Err(RepoError::Conflict(named)) => assert_eq!(named, field),
            other => panic!("{other:?}"),
        }
    }
    // A change to a taken value too (find_one_and_update answers a command error).
    let taken = serde_json::json!({ "code": "a" });
    match documents
        .set::<serde_json::Value>(3, &taken, goex_mongo::bson::DateTime::now())
        .await
    {
        Err(RepoError::Conflict(named)) => assert_eq!(named, "code"),
        other => panic!("{other:?}"),
    }
    let page: Vec<serde_json::Value> = documents.page(1, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|d| d["_id"].as_i64()).collect::<Vec<_>>(),
        [Some(2), Some(3)]
    );
    assert!(documents.delete(2).await.unwrap());
    assert!(!documents.delete(2).await.unwrap());
}
