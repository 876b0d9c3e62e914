//! The profiling listener: pprof protobuf and flamegraph SVG, bounded seconds.

use crate::helpers::{assert_envelope, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_served_as_protobuf_and_svg() {
    let app = spawn_app_with(&[
        ("APP__PPROF__ENABLED", "true".into()),
        ("APP__PPROF__ADDR", "127.0.0.1:0".into()),
        ("APP__PPROF__MAX_SECONDS", "5".into()),
    ])
    .await;
    let base = format!(
        "http://127.0.0.1:{}",
        app.pprof_port.expect("pprof listener")
    );
    // Load while profiling, so there are samples to render.
    let load = tokio::spawn({
        let (client, url) = (app.client.clone(), format!("{}/hello", app.address));
        async move {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(2500);
            while std::time::Instant::now() < until {
                let _ = client.get(&url).send().await;
            }
        }
    });
    let res = reqwest::get(format!("{base}/debug/pprof/profile?seconds=1"))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    let bytes = res.bytes().await.unwrap();
    // profile.proto: field 1 (sample_type, length-delimited) comes first.
    assert!(
        bytes.len() > 16 && bytes[0] == 0x0a,
        "{} bytes",
        bytes.len()
    );

    let res = reqwest::get(format!("{base}/debug/pprof/flamegraph?seconds=1"))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let svg = res.text().await.unwrap();
    assert!(svg.contains("<svg"), "an SVG document");
    load.await.unwrap();

    let res = reqwest::get(format!("{base}/debug/pprof/profile?seconds=600"))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert!(assert_envelope(&res.json().await.unwrap(), "10000").contains("seconds"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_is_off_when_disabled() {
    let app = spawn_app_with(&[("APP__PPROF__ENABLED", "false".into())]).await;
    assert!(app.pprof_port.is_none());
}
