//! The OpenAPI document (`/openapi.json`): one source with the routes. Every route the app
//! registers (its route table, read from the registration itself) is in the document, is served
//! with a status the document lists, and has a request in the Postman collection; the rules the
//! document states are the rules the validators apply; Swagger UI is served outside prod only.
//! The served document is pinned by `tests/golden/openapi.json`: an API change updates it in the
//! same commit (`UPDATE_GOLDEN=1 cargo nextest run --test api golden`).

use std::collections::BTreeSet;

use go_example::server::http::{Surface, document};
use go_example::service::rate_limit::RateLimitService;
use go_example::web::routes::RouteTable;
use serde_json::Value;
use shaku::HasComponent;

use crate::helpers::{manifest_dir, spawn_app, spawn_app_with};

const FULL: Surface = Surface {
    debug_routes: true,
    openapi: true,
    swagger_ui: true,
};

/// (method, path) of every request in the collection, `{{baseUrl}}` requests only, but for the
/// `errors` folder's (deliberately unknown paths and wrong methods).
fn postman_routes() -> BTreeSet<(String, String)> {
    let path = manifest_dir().join("assets/postman/go_example.postman_collection.json");
    let collection: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut found = BTreeSet::new();
    let mut stack = vec![&collection["item"]];
    while let Some(items) = stack.pop() {
        for item in items.as_array().unwrap() {
            if item.get("item").is_some() {
                if item["name"] != "errors" {
                    stack.push(&item["item"]);
                }
                continue;
            }
            let request = &item["request"];
            // What newman sends: the host and path arrays (not `raw`).
            let url = &request["url"];
            if url["host"][0] != "{{baseUrl}}" {
                continue;
            }
            let segments: Vec<&str> = url["path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            // Postman writes path parameters as `:id`; the document as `{id}`.
            let path = segments
                .iter()
                .map(|seg| match seg.strip_prefix(':') {
                    Some(name) => format!("{{{name}}}"),
                    None => (*seg).to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/");
            let path = format!("/{path}");
            found.insert((request["method"].as_str().unwrap().to_owned(), path));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_route_is_documented_served_and_in_the_postman_collection() {
    let app = spawn_app().await;
    let (status, served) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let mut doc = document(FULL);
    // The served document also lists the 429 of the configured rate-limit rules.
    let rules: std::sync::Arc<dyn RateLimitService> = app.module.resolve();
    go_example::middleware::rate_limit::document(&mut doc, rules.as_ref());
    let table = RouteTable::from_document(&doc);
    let routes: Vec<(String, String)> = table
        .routes()
        .map(|(m, p)| (m.as_str().to_owned(), p.to_owned()))
        .collect();
    assert!(routes.len() >= 12, "the table is the whole app: {routes:?}");
    assert_eq!(
        served,
        serde_json::to_value(&doc).unwrap(),
        "the served document is the registration's"
    );

    let postman = postman_routes();
    let missing: Vec<_> = routes.iter().filter(|r| !postman.contains(r)).collect();
    assert!(
        missing.is_empty(),
        "routes without a Postman request: {missing:?}"
    );
    let undocumented: Vec<_> = postman
        .iter()
        // Swagger UI is a page over the document, not an operation of it.
        .filter(|r| !routes.contains(r) && r.1 != "/swagger-ui/")
        .collect();
    assert!(
        undocumented.is_empty(),
        "Postman requests for routes the app does not document: {undocumented:?}"
    );

    // Each route answers (not 404/405), with a status its operation lists.
    for (method, path) in &routes {
        let url = match path.as_str() {
            "/debug/slow" => format!("{}{path}?ms=0", app.address),
            _ => format!("{}{path}", app.address),
        };
        let res = app
            .client
            .request(method.parse().unwrap(), url)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16().to_string();
        let operation = &served["paths"][path][method.to_lowercase()];
        assert!(
            operation["responses"].get(&status).is_some(),
            "{method} {path} answered {status}, which its operation does not list"
        );
    }
}

/// The committed copy of the served document, pretty-printed (keys in the served order).
const GOLDEN: &str = "tests/golden/openapi.json";
/// Set to `1` to rewrite [`GOLDEN`] from the served document instead of comparing.
const UPDATE_GOLDEN: &str = "UPDATE_GOLDEN";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_golden_one() {
    let app = spawn_app().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status().as_u16(), 200);
    let served: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
    let path = manifest_dir().join(GOLDEN);
    if std::env::var(UPDATE_GOLDEN).is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    if golden != pretty {
        let first_difference = golden
            .lines()
            .zip(pretty.lines())
            .enumerate()
            .find(|(_, (want, got))| want != got)
            .map(|(i, (want, got))| format!("line {}: golden `{want}`, served `{got}`", i + 1))
            .unwrap_or_else(|| "one is a prefix of the other".to_owned());
        panic!(
            "/openapi.json differs from {GOLDEN} ({first_difference}). If the API change is \
             intended, regenerate it with `{UPDATE_GOLDEN}=1 cargo nextest run --test api \
             the_served_document_is_the_golden_one` and commit it with the change."
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_path_with_another_method_is_405_with_allow_from_the_route_table() {
    let app = spawn_app().await;
    let res = app
        .client
        .delete(format!("{}/auth/login", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "10014");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_lists_its_error_codes_and_protected_ones_require_the_bearer_scheme() {
    let doc = serde_json::to_value(document(FULL)).unwrap();
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let codes = |op: &Value, status: &str| -> Vec<String> {
        op["responses"][status]["content"]["application/json"]["examples"]
            .as_object()
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default()
    };
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                codes(op, "500").contains(&"10001".to_owned()),
                "{method} {path}: 500 lists 10001"
            );
            let protected = op.get("security").is_some();
            let mut unauthorized = codes(op, "401");
            unauthorized.sort();
            if protected {
                // The caller: a user (no role) or an admin (the role, as the scheme's scope);
                // an admin's route documents the lower role's refusal.
                let roles = &op["security"][0]["bearer"];
                assert!(
                    *roles == serde_json::json!([]) || *roles == serde_json::json!(["admin"]),
                    "{method} {path}: {roles}"
                );
                if *roles == serde_json::json!(["admin"]) {
                    assert_eq!(codes(op, "403"), ["10011"], "{method} {path}");
                }
                assert_eq!(
                    unauthorized,
                    ["10010", "20001", "20002"],
                    "{method} {path}: the bearer check's codes"
                );
            }
            if op.get("requestBody").is_some() {
                assert_eq!(codes(op, "413"), ["10007"], "{method} {path}");
                assert_eq!(codes(op, "408"), ["10012"], "{method} {path}");
                assert!(codes(op, "400").contains(&"10000".to_owned()));
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["headers"].get("X-Request-Id").is_some(),
                    "{method} {path} {status}: X-Request-Id documented"
                );
            }
        }
    }
    let login = &doc["paths"]["/auth/login"]["post"];
    assert_eq!(codes(login, "401"), ["20000"]);
    assert_eq!(codes(login, "429"), ["10008"]);
    assert_eq!(
        doc["paths"]["/home"]["get"]["security"][0]["bearer"],
        serde_json::json!([])
    );
    for (path, method) in [
        ("/excel/export", "get"),
        ("/excel/import", "post"),
        ("/excel/import/{id}", "get"),
        ("/jenkins/index", "get"),
        ("/jenkins/job/build", "post"),
    ] {
        assert_eq!(
            doc["paths"][path][method]["security"][0]["bearer"],
            serde_json::json!(["admin"]),
            "{method} {path} is an admin's"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_the_validators_rules() {
    use go_example::meta::validator::PASSWORD_PATTERN;
    use go_example::model::forms::USERNAME_INPUT_PATTERN;
    let doc = serde_json::to_value(document(FULL)).unwrap();
    for form in ["LoginForm", "RegisterForm"] {
        let props = &doc["components"]["schemas"][form]["properties"];
        assert_eq!(
            props["username"]["pattern"], USERNAME_INPUT_PATTERN,
            "{form}"
        );
        assert_eq!(props["password"]["pattern"], PASSWORD_PATTERN, "{form}");
    }
    let gender = &doc["components"]["schemas"]["RegisterForm"]["properties"]["gender"];
    assert_eq!(
        (gender["minimum"].as_i64(), gender["maximum"].as_i64()),
        (Some(0), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_is_served_from_the_binary_and_follows_the_switches() {
    let app = spawn_app().await;
    let res = app.get("/swagger-ui/").await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("swagger-ui"));
    let init = app.get("/swagger-ui/swagger-initializer.js").await;
    assert_eq!(init.status().as_u16(), 200);
    assert!(init.text().await.unwrap().contains("/openapi.json"));

    let off = spawn_app_with(&[
        ("APP__SERVER__HTTP__SWAGGER_UI", "false".to_owned()),
        ("APP__SERVER__HTTP__OPENAPI", "false".to_owned()),
    ])
    .await;
    assert_eq!(off.get("/swagger-ui/").await.status().as_u16(), 404);
    assert_eq!(off.get("/openapi.json").await.status().as_u16(), 404);
}
