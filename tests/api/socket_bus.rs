//! Rooms across socket app instances (docs/websocket.md, "Rooms across instances"): two
//! socket apps on one Redis (single node, and Cluster), members on both; each room message
//! reaches every member once, wherever it is connected, and never comes back to its sender.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{redis_overrides, service_env, unique_name};
use crate::socket::{connect, next_json, spawn_socket};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// The next room message's `data` (the next frame must be one).
async fn message(ws: &mut Ws) -> Value {
    let frame = next_json(ws).await;
    assert_eq!(frame["type"], "message", "{frame}");
    frame["data"].clone()
}

/// No frame arrives within `wait`.
async fn silent(ws: &mut Ws, wait: Duration) {
    if let Ok(Some(Ok(frame))) = tokio::time::timeout(wait, ws.next()).await {
        panic!("unexpected frame: {frame:?}");
    }
}

/// Publishes `data` to `room` and reads the sender's acknowledgement (its local count).
async fn publish(ws: &mut Ws, room: &str, data: &str) -> u64 {
    send(ws, json!({"type": "publish", "room": room, "data": data})).await;
    let ack = next_json(ws).await;
    assert_eq!(ack["type"], "published", "{ack}");
    ack["delivered"].as_u64().unwrap()
}

async fn join(ws: &mut Ws, room: &str) {
    send(ws, json!({"type": "join", "room": room})).await;
    let joined = next_json(ws).await;
    assert_eq!(joined["type"], "joined", "{joined}");
}

async fn rooms_span_two_socket_apps(mode: &str, addrs: &str) {
    // A room of this test's own (Redis is shared), open to anonymous connections.
    let room = unique_name("bus-").replace('_', "-");
    let mut env = redis_overrides(mode, addrs);
    env.push(("APP__SERVER__SOCKET__PUBLIC_ROOMS__0", room.clone()));
    let (one, two) = (spawn_socket(&env).await, spawn_socket(&env).await);
    // a and c on the first instance, b on the second.
    let mut a = connect(&one.url()).await;
    let mut c = connect(&one.url()).await;
    let mut b = connect(&two.url()).await;
    for ws in [&mut a, &mut b, &mut c] {
        join(ws, &room).await;
    }

    // A subscription takes effect shortly after the join: probe until b hears a.
    let mut heard = false;
    for i in 0..50 {
        let probe = format!("probe-{i}");
        assert_eq!(publish(&mut a, &room, &probe).await, 1, "c, locally");
        assert_eq!(message(&mut c).await, probe.as_str());
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_millis(200), b.next()).await
        {
            let frame: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(frame["data"], probe.as_str(), "{frame}");
            heard = true;
            break;
        }
    }
    assert!(heard, "the second instance never heard the room");
    // b subscribed; wait for a's instance to hear b too, the same way.
    let mut heard = false;
    for i in 0..50 {
        let probe = format!("back-probe-{i}");
        assert_eq!(
            publish(&mut b, &room, &probe).await,
            0,
            "no one else on two"
        );
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_millis(200), a.next()).await
        {
            let frame: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(frame["data"], probe.as_str(), "{frame}");
            assert_eq!(message(&mut c).await, probe.as_str());
            heard = true;
            break;
        }
        // A probe a missed may still reach c: c's order is checked after.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(50), c.next()).await
        {
        }
    }
    assert!(heard, "the first instance never heard the room");

    // Settled: every message reaches every other member once, in order, wherever it is.
    for data in ["one", "two", "three"] {
        publish(&mut a, &room, data).await;
    }
    for data in ["one", "two", "three"] {
        assert_eq!(message(&mut b).await, data, "b, across instances");
        assert_eq!(message(&mut c).await, data, "c, locally and only locally");
    }
    publish(&mut b, &room, "from-b").await;
    assert_eq!(message(&mut a).await, "from-b");
    assert_eq!(message(&mut c).await, "from-b");
    // Nothing else: no echo of a's messages through Redis, none of b's back to b.
    for ws in [&mut a, &mut b, &mut c] {
        silent(ws, Duration::from_millis(300)).await;
    }

    // A member that left hears nothing more; the others still do.
    send(&mut a, json!({"type": "leave", "room": room})).await;
    assert_eq!(next_json(&mut a).await["type"], "left");
    publish(&mut b, &room, "after").await;
    assert_eq!(message(&mut c).await, "after");
    silent(&mut a, Duration::from_millis(300)).await;

    // The bus's counters: published and heard on each instance.
    for (app, direction) in [(&one, "out"), (&two, "in")] {
        let text = crate::helpers::scrape_port(app.metrics_port.unwrap()).await;
        let series = format!(r#"go_example_socket_bus_messages_total{{direction="{direction}"}}"#);
        assert!(
            crate::helpers::quick_value(&text, &series).unwrap_or(0.0) >= 3.0,
            "{series} in\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_span_two_socket_apps_on_a_single_redis() {
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    rooms_span_two_socket_apps("single", &addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_span_two_socket_apps_on_redis_cluster() {
    let Some(addrs) = service_env("GOEX_REDIS_CLUSTER_ADDRS") else {
        return;
    };
    rooms_span_two_socket_apps("cluster", &addrs).await;
}
