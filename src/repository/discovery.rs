//! Client-side discovery (docs/discovery.md): a tonic channel balanced over the passing
//! instances of a Consul service, kept current by blocking health queries.
//!
//! The watcher follows Consul's rules: it blocks on the last `X-Consul-Index` (reset to 0 when
//! the index goes backwards), waits at least [`MIN_QUERY_INTERVAL`] between queries that did
//! not advance it, and when the agent cannot be reached it keeps the last known instances
//! (calls go on) and retries with backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use goex_consul::{ConsulClient, Instance, Target, next_index};
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

/// The shortest time between two queries that did not advance the index.
pub const MIN_QUERY_INTERVAL: Duration = Duration::from_millis(200);

/// A channel over `target`'s passing instances, each dialled as `endpoint(instance)` builds
/// it. The watcher runs on the current tokio runtime until the channel is dropped.
pub fn balanced(
    target: Target,
    client: ConsulClient,
    timeout: Duration,
    endpoint: impl Fn(&Instance) -> Result<Endpoint, String> + Send + 'static,
    logger: slog::Logger,
) -> Channel {
    let (channel, changes) = Channel::balance_channel::<String>(64);
    tokio::spawn(watch(target, client, timeout, endpoint, changes, logger));
    channel
}

async fn watch(
    target: Target,
    client: ConsulClient,
    timeout: Duration,
    endpoint: impl Fn(&Instance) -> Result<Endpoint, String>,
    changes: tokio::sync::mpsc::Sender<Change<String, Endpoint>>,
    logger: slog::Logger,
) {
    let logger =
        logger.new(slog::o!("consul" => target.agent.clone(), "service" => target.service.clone()));
    let mut known: BTreeMap<String, Instance> = BTreeMap::new();
    let (mut index, mut pause) = (0u64, Duration::from_millis(250));
    let mut unreachable = false;
    loop {
        let started = tokio::time::Instant::now();
        let answer = tokio::select! {
            answer = client.healthy(&target.service, index, target.wait, timeout) => answer,
            // Every client of the channel is gone: so is the watcher.
            () = changes.closed() => return,
        };
        match answer {
            Ok(healthy) => {
                if unreachable {
                    slog::info!(logger, "consul reachable again");
                    unreachable = false;
                }
                let next = next_index(index, healthy.index);
                let advanced = next != index;
                index = next;
                pause = Duration::from_millis(250);
                let now: BTreeMap<String, Instance> = healthy
                    .instances
                    .into_iter()
                    .map(|i| (i.id.clone(), i))
                    .collect();
                for gone in known.keys().filter(|id| !now.contains_key(*id)) {
                    slog::info!(logger, "instance left"; "id" => gone);
                    if changes.send(Change::Remove(gone.clone())).await.is_err() {
                        return;
                    }
                }
                for (id, instance) in &now {
                    if known.get(id) == Some(instance) {
                        continue;
                    }
                    match endpoint(instance) {
                        Ok(e) => {
                            slog::info!(logger, "instance joined"; "id" => id,
                                "address" => format!("{}:{}", instance.address, instance.port));
                            if changes.send(Change::Insert(id.clone(), e)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            slog::warn!(logger, "instance not dialable"; "id" => id, "error" => e)
                        }
                    }
                }
                known = now;
                if !advanced && started.elapsed() < MIN_QUERY_INTERVAL {
                    tokio::time::sleep(MIN_QUERY_INTERVAL - started.elapsed()).await;
                }
            }
            Err(e) => {
                if !unreachable {
                    slog::warn!(logger, "consul unreachable: keeping the last known instances";
                        "error" => %e, "instances" => known.len());
                    unreachable = true;
                }
                if changes.is_closed() {
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}
