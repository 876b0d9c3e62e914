//! The same repositories on a real 6-node Redis Cluster (3 masters, 3 replicas), and a master
//! killed under a stream of requests: clean 503s during the failover, 200s after it, no restart.
//! Serialised with each other (.config/nextest.toml) because one of them kills a master.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::{eventually, redis_overrides, service_env, services, spawn_app_with};
use crate::redis::exercise_repositories;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_work_on_the_cluster() {
    let Some(addrs) = service_env("GOEX_REDIS_CLUSTER_ADDRS") else {
        return;
    };
    let app = spawn_app_with(&redis_overrides("cluster", &addrs)).await;
    exercise_repositories(&app, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_over_with_clean_503s_and_no_restart() {
    let Some(addrs) = service_env("GOEX_REDIS_CLUSTER_ADDRS") else {
        return;
    };
    let mut overrides = redis_overrides("cluster", &addrs);
    // `{f}` hashes to slot 3168, served by the master of slots 0-5460: the one killed below.
    overrides.push(("APP__CACHEKEYS__HELLOVALUE__KEY", "{f}hello:value".into()));
    overrides.push(("APP__REDIS__COMMAND_TIMEOUT", "1s".into()));
    overrides.push(("APP__REDIS__CONNECT_TIMEOUT", "500ms".into()));
    let app = Arc::new(spawn_app_with(&overrides).await);
    assert_eq!(app.get_json("/hello").await.0, 200);

    let running = Arc::new(AtomicBool::new(true));
    let stream = tokio::spawn({
        let (app, running) = (app.clone(), running.clone());
        async move {
            let mut seen = Vec::new();
            while running.load(Ordering::Relaxed) {
                let started = Instant::now();
                let (status, body) = app.get_json("/hello").await;
                seen.push((
                    Instant::now(),
                    status,
                    body["error"]["code"].as_str().map(str::to_owned),
                    started.elapsed(),
                ));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let killed_at = Instant::now();
    let port = {
        let out =
            std::process::Command::new(crate::helpers::manifest_dir().join("scripts/services.sh"))
                .args(["stop", "redis-master"])
                .output()
                .expect("stop a master");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // The replica is promoted after cluster-node-timeout (2 s); every pooled cluster connection
    // then follows the new topology by itself. Recovered = 20 successes in a row.
    let mut in_a_row = 0;
    let recovered = eventually(Duration::from_secs(20), async || {
        let (status, _) = app.get_json("/hello").await;
        in_a_row = if status == 200 { in_a_row + 1 } else { 0 };
        in_a_row >= 20 && killed_at.elapsed() > Duration::from_secs(1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::Relaxed);
    let seen = stream.await.unwrap();
    // Put the killed node back (it rejoins as a replica) for the tests after this one.
    services(&["start", "redis-node", &port]);

    assert!(
        recovered,
        "the app serves again after the failover, without a restart"
    );
    for (_, status, code, took) in &seen {
        assert!(
            *status == 200 || (*status == 503 && code.as_deref() == Some("10004")),
            "{status} {code:?}"
        );
        assert!(
            *took < Duration::from_millis(2500),
            "bounded by command_timeout, took {took:?}"
        );
    }
    let failures = seen.iter().filter(|(_, s, ..)| *s != 200).count();
    let last = seen
        .iter()
        .rev()
        .take(10)
        .filter(|(_, s, ..)| *s == 200)
        .count();
    assert_eq!(last, 10, "the last requests succeed");
    eprintln!("failover: {} requests, {failures} clean 503s", seen.len());
}
