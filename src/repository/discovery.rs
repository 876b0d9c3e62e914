//! Client-side discovery (docs/discovery.md): the passing instances of a Consul service, kept
//! current by blocking health queries, or every address of a DNS name (`dns:///host:port`: a
//! Kubernetes headless Service's ready pods), resolved again every `resolve_interval`; each
//! with its own connection; the pick of one per call;
//! and passive health checking: an instance a call could not reach is taken out of the
//! rotation here at once (Consul notices only at its next check), and comes back when a probe
//! connects to it again.
//!
//! The watcher follows Consul's rules: it blocks on the last `X-Consul-Index` (reset to 0 when
//! the index goes backwards), waits at least [`MIN_QUERY_INTERVAL`] between queries that did
//! not advance it, and when the agent cannot be reached it keeps the last known instances
//! (calls go on) and retries with backoff.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use goex_consul::{ConsulClient, Instance, Target, next_index};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::transport::{Channel, Endpoint};

use crate::repository::ejection::{Backoff, Health};
use crate::repository::thread_channel::ThreadChannel;

/// The shortest time between two queries that did not advance the index.
pub const MIN_QUERY_INTERVAL: Duration = Duration::from_millis(200);

/// The instances of one service, as Consul lists them passing and as this process's calls
/// found them. Cheap to clone; the watcher and the probes stop when the last clone is dropped.
#[derive(Clone)]
pub struct Instances {
    shared: Arc<Shared>,
}

struct Shared {
    /// One entry per instance Consul lists (the only source of entries: bounded by it).
    members: Mutex<Vec<Member>>,
    backoff: Backoff,
    /// How long a probe may take to connect (TCP, TLS, HTTP/2).
    probe_timeout: Duration,
    /// The watcher has had its first answer: until then a call waits for it.
    ready: tokio::sync::watch::Sender<bool>,
    /// Where the probes run: the watcher's runtime, not the caller's (an HTTP worker's).
    runtime: tokio::runtime::Handle,
    next_key: AtomicU64,
    /// The state of the pick's random numbers (splitmix64).
    random: AtomicU64,
    logger: slog::Logger,
    /// Stops the watcher when the last clone goes.
    _stop: DropGuard,
}

struct Member {
    /// The Consul registration id.
    id: String,
    /// Unique to this entry: an instance that leaves and comes back is a new entry.
    key: u64,
    /// The instance's connections, one per calling thread (each reconnecting by itself when it
    /// breaks); replaced by fresh ones when a probe brings the instance back.
    channel: Arc<ThreadChannel>,
    in_flight: Arc<AtomicUsize>,
    health: Health,
}

/// The instance a call goes to: its connection, counted in flight until dropped.
pub struct Pick {
    channel: Arc<ThreadChannel>,
    key: u64,
    epoch: u64,
    in_flight: Arc<AtomicUsize>,
}

impl Pick {
    /// The instance's connection on this thread.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn channel(&self) -> Channel {
        self.channel.get()
    }

    /// Where the instance's calls go.
    pub fn uri(&self) -> &http::Uri {
        self.channel.endpoint().uri()
    }

    /// The entry picked, for [`Instances::pick`]'s `tried`.
    pub fn key(&self) -> u64 {
        self.key
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Instances {
    /// None yet; the watcher (stopped by `stop` when the last clone goes) fills them in.
    fn new(
        backoff: Backoff,
        probe_timeout: Duration,
        logger: slog::Logger,
        stop: CancellationToken,
    ) -> Self {
        let mut seed = std::hash::RandomState::new().build_hasher();
        seed.write_u64(0);
        Self {
            shared: Arc::new(Shared {
                members: Mutex::new(Vec::new()),
                backoff,
                probe_timeout,
                ready: tokio::sync::watch::Sender::new(false),
                runtime: tokio::runtime::Handle::current(),
                next_key: AtomicU64::new(0),
                random: AtomicU64::new(seed.finish()),
                logger,
                _stop: stop.drop_guard(),
            }),
        }
    }

    /// Waits for the watcher's first answer (a call made at start-up finds the instances
    /// rather than none); at once afterwards, even when the agent is gone since.
    pub async fn ready(&self) {
        let mut ready = self.shared.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// The instance for a call's next try: power of two choices (the one with fewer calls in
    /// flight of two taken at random) among the first non-empty of: the instances in the
    /// rotation; those not `tried` by this call (every instance is ejected: ejection never
    /// leaves a call with nowhere to go, it tries them all); any. A try that failed ejected its
    /// instance, so the next one goes elsewhere: ejection, not `tried`, moves a retry while
    /// other instances serve. `None` when Consul lists none.
    pub fn pick(&self, tried: &[u64]) -> Option<Pick> {
        let members = self.shared.members();
        let tiers: [&dyn Fn(&Member) -> bool; 3] = [
            &|m: &Member| !m.health.is_ejected(),
            &|m: &Member| !tried.contains(&m.key),
            &|_: &Member| true,
        ];
        let (tier, n) = tiers.into_iter().find_map(|tier| {
            let n = members.iter().filter(|&m| tier(m)).count();
            (n > 0).then_some((tier, n))
        })?;
        let random = self.shared.random();
        let first = (random % n as u64) as usize;
        let second = if n > 1 {
            (first + 1 + ((random >> 32) % (n as u64 - 1)) as usize) % n
        } else {
            first
        };
        let nth = |i| members.iter().filter(|&m| tier(m)).nth(i);
        let (a, b) = (nth(first)?, nth(second)?);
        let load = |m: &Member| m.in_flight.load(Ordering::Relaxed);
        let member = if load(b) < load(a) { b } else { a };
        member.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Pick {
            channel: member.channel.clone(),
            key: member.key,
            epoch: member.health.epoch(),
            in_flight: member.in_flight.clone(),
        })
    }

    /// Whether every instance is out of the rotation and `tried` by this call: its next try
    /// goes back to one of them.
    pub fn exhausted(&self, tried: &[u64]) -> bool {
        self.shared
            .members()
            .iter()
            .all(|m| m.health.is_ejected() && tried.contains(&m.key))
    }

    /// The call on `pick` could not reach its instance: it leaves the rotation now, until a
    /// probe connects to it (the first after `grpc_client.ejection_initial`).
    pub fn failed(&self, pick: &Pick) {
        let now = Instant::now();
        let mut members = self.shared.members();
        let Some(member) = members.iter_mut().find(|m| m.key == pick.key) else {
            return;
        };
        let Some(probe_at) = member.health.failed(pick.epoch, now) else {
            return;
        };
        slog::warn!(self.shared.logger, "instance ejected: a call could not reach it";
            "id" => &member.id, "probe_in" => ?probe_at.saturating_duration_since(now));
        let probe = probe(
            Arc::downgrade(&self.shared),
            member.key,
            member.channel.endpoint().clone(),
            probe_at,
        );
        drop(members);
        self.shared.runtime.spawn(probe);
    }

    /// The call on `pick` was answered by its instance (whatever the answer).
    pub fn answered(&self, pick: &Pick) {
        if let Some(member) = self.shared.members().iter_mut().find(|m| m.key == pick.key) {
            member.health.answered(pick.epoch);
        }
    }

    /// Consul lists `id` (new, or at a new address): a fresh entry, in the rotation.
    fn upsert(&self, id: &str, endpoint: Endpoint) {
        let member = Member {
            id: id.to_owned(),
            key: self.shared.next_key.fetch_add(1, Ordering::Relaxed),
            channel: Arc::new(ThreadChannel::new(endpoint)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            health: Health::new(self.shared.backoff),
        };
        let mut members = self.shared.members();
        match members.iter_mut().find(|m| m.id == id) {
            Some(old) => *old = member,
            None => members.push(member),
        }
    }

    /// Consul no longer lists `id` (its probes, if any, stop).
    fn remove(&self, id: &str) {
        self.shared.members().retain(|m| m.id != id);
    }
}

impl Shared {
    fn members(&self) -> MutexGuard<'_, Vec<Member>> {
        // Nothing panics while holding it; a poisoned list is still a consistent list.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn random(&self) -> u64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .random
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Probes the ejected entry `key` at `at`, and again after each failure (backoff doubling up to
/// `ejection_max`), until a connection (TCP, TLS with the client's settings, HTTP/2) succeeds:
/// the entry is then back in the rotation with fresh connections (the probe's only proves the
/// instance is back: each calling thread makes its own, `ThreadChannel`, as for a new entry).
/// Ends when the entry or the instances are gone.
async fn probe(shared: Weak<Shared>, key: u64, endpoint: Endpoint, mut at: Instant) {
    loop {
        tokio::time::sleep_until(at.into()).await;
        let Some(timeout) = shared.upgrade().map(|s| s.probe_timeout) else {
            return;
        };
        let connected = tokio::time::timeout(timeout, endpoint.connect()).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut members = shared.members();
        let Some(member) = members.iter_mut().find(|m| m.key == key) else {
            return;
        };
        match connected {
            Ok(Ok(_connected)) => {
                member.channel = Arc::new(ThreadChannel::new(endpoint.clone()));
                member.health.probed(true, now);
                slog::info!(shared.logger, "instance back in the rotation: a probe connected";
                    "id" => &member.id);
                return;
            }
            failed => {
                let Some(next) = member.health.probed(false, now) else {
                    return;
                };
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no connection within {timeout:?}"),
                };
                slog::debug!(shared.logger, "probe failed: the instance stays out";
                    "id" => &member.id, "error" => error,
                    "next_probe_in" => ?next.saturating_duration_since(now));
                at = next;
            }
        }
    }
}

/// `endpoint` for the instances whose address is in one of `networks` (any address when it is
/// empty); the others get an error naming `consul.allowed_networks`, so the watcher logs them
/// once (per change of the instance) and never dials them. An address that is a name, not an
/// IP address, cannot be checked: refused too (a name may resolve anywhere, at any time).
pub fn within(
    networks: Vec<ipnet::IpNet>,
    endpoint: impl Fn(&Instance) -> Result<Endpoint, String> + Send + 'static,
) -> impl Fn(&Instance) -> Result<Endpoint, String> + Send + 'static {
    move |instance| {
        if !networks.is_empty() {
            let bare = instance
                .address
                .trim_start_matches('[')
                .trim_end_matches(']');
            let ip = bare
                .parse::<std::net::IpAddr>()
                .map_err(|_| {
                    format!(
                        "address {} is not an IP address: not dialled (consul.allowed_networks)",
                        instance.address
                    )
                })?
                .to_canonical();
            if !networks.iter().any(|n| n.contains(&ip)) {
                return Err(format!(
                    "address {ip} is outside consul.allowed_networks: not dialled"
                ));
            }
        }
        endpoint(instance)
    }
}

/// The passing instances of `target`, each dialled as `endpoint(instance)` builds it, ejected
/// for `backoff` when a call cannot reach them and probed back within `probe_timeout`. The
/// watcher runs on the current tokio runtime until the last clone is dropped.
pub fn discover(
    target: Target,
    client: ConsulClient,
    timeout: Duration,
    endpoint: impl Fn(&Instance) -> Result<Endpoint, String> + Send + 'static,
    backoff: Backoff,
    probe_timeout: Duration,
    logger: slog::Logger,
) -> Instances {
    let logger =
        logger.new(slog::o!("consul" => target.agent.clone(), "service" => target.service.clone()));
    let stop = CancellationToken::new();
    let instances = Instances::new(backoff, probe_timeout, logger.clone(), stop.clone());
    tokio::spawn(watch(
        target,
        client,
        timeout,
        endpoint,
        Arc::downgrade(&instances.shared),
        stop,
        logger,
    ));
    instances
}

/// Makes `instances` the members of `now`: those gone removed, new or changed ones dialled as
/// `endpoint` builds them (one that cannot be is left out, with a warning); `known` becomes
/// `now`.
fn apply(
    instances: &Instances,
    known: &mut BTreeMap<String, Instance>,
    now: BTreeMap<String, Instance>,
    endpoint: &impl Fn(&Instance) -> Result<Endpoint, String>,
    logger: &slog::Logger,
) {
    for gone in known.keys().filter(|id| !now.contains_key(*id)) {
        slog::info!(logger, "instance left"; "id" => gone);
        instances.remove(gone);
    }
    for (id, instance) in &now {
        if known.get(id) == Some(instance) {
            continue;
        }
        match endpoint(instance) {
            Ok(e) => {
                slog::info!(logger, "instance joined"; "id" => id,
                    "address" => format!("{}:{}", instance.address, instance.port));
                instances.upsert(id, e);
            }
            Err(e) => {
                slog::warn!(logger, "instance not dialable"; "id" => id, "error" => e);
                instances.remove(id);
            }
        }
    }
    *known = now;
}

/// A `dns:///host:port` target (gRPC's name syntax, the system resolver).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsTarget {
    /// The name resolved.
    pub host: String,
    /// The port every address is dialled on.
    pub port: u16,
}

impl DnsTarget {
    /// Parses `dns:///host:port`; `None` for any other scheme.
    ///
    /// # Errors
    /// A `dns:` URL naming a DNS server (`dns://server/...`: only the system's resolver is
    /// used), or without a host and port.
    pub fn parse(url: &str) -> Option<Result<DnsTarget, String>> {
        let rest = url.strip_prefix("dns:")?;
        Some((|| {
            let name = rest.strip_prefix("///").ok_or_else(|| {
                format!("{url}: expected dns:///host:port (the system's resolver; no DNS server in the URL)")
            })?;
            let (host, port) = name
                .rsplit_once(':')
                .ok_or_else(|| format!("{url}: expected dns:///host:port"))?;
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{url}: {port} is not a port"))?;
            if host.is_empty() || host.contains('/') {
                return Err(format!("{url}: expected dns:///host:port"));
            }
            Ok(DnsTarget {
                host: host.to_owned(),
                port,
            })
        })())
    }
}

/// Every address `target` resolves to, dialled as `endpoint` builds it, resolved again every
/// `interval` (an address gone is dropped, a new one joins); ejection and probes as for Consul
/// instances. When a lookup fails the last addresses are kept. The resolver runs on the
/// current tokio runtime until the last clone is dropped.
pub fn resolve(
    target: DnsTarget,
    interval: Duration,
    endpoint: impl Fn(&Instance) -> Result<Endpoint, String> + Send + 'static,
    backoff: Backoff,
    probe_timeout: Duration,
    logger: slog::Logger,
) -> Instances {
    resolve_with(
        target,
        interval,
        |host: String, port: u16| async move {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(Iterator::collect)
        },
        endpoint,
        backoff,
        probe_timeout,
        logger,
    )
}

/// [`resolve`] with the lookup given (tests answer it themselves).
fn resolve_with<F, L>(
    target: DnsTarget,
    interval: Duration,
    lookup: L,
    endpoint: impl Fn(&Instance) -> Result<Endpoint, String> + Send + 'static,
    backoff: Backoff,
    probe_timeout: Duration,
    logger: slog::Logger,
) -> Instances
where
    L: Fn(String, u16) -> F + Send + 'static,
    F: std::future::Future<Output = std::io::Result<Vec<std::net::SocketAddr>>> + Send,
{
    let logger = logger.new(slog::o!("dns" => format!("{}:{}", target.host, target.port)));
    let stop = CancellationToken::new();
    let instances = Instances::new(backoff, probe_timeout, logger.clone(), stop.clone());
    let shared = Arc::downgrade(&instances.shared);
    tokio::spawn(async move {
        let mut known: BTreeMap<String, Instance> = BTreeMap::new();
        let mut failing = false;
        loop {
            let answer = tokio::select! {
                answer = lookup(target.host.clone(), target.port) => answer,
                () = stop.cancelled() => return,
            };
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let instances_now = Instances { shared };
            match answer {
                Ok(addresses) => {
                    if failing {
                        slog::info!(logger, "the name resolves again");
                        failing = false;
                    }
                    let now: BTreeMap<String, Instance> = addresses
                        .into_iter()
                        .map(|a| {
                            let address = a.ip().to_canonical().to_string();
                            let id = format!("{address}:{}", a.port());
                            (
                                id.clone(),
                                Instance {
                                    id,
                                    address,
                                    port: a.port(),
                                },
                            )
                        })
                        .collect();
                    apply(&instances_now, &mut known, now, &endpoint, &logger);
                    instances_now.shared.ready.send_replace(true);
                }
                Err(e) => {
                    if !failing {
                        slog::warn!(logger, "the name does not resolve: keeping the last known addresses";
                            "error" => %e, "instances" => known.len());
                        failing = true;
                    }
                    // Calls wait for the first answer only as long as one lookup takes.
                    instances_now.shared.ready.send_replace(true);
                }
            }
            drop(instances_now);
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.cancelled() => return,
            }
        }
    });
    instances
}

async fn watch(
    target: Target,
    client: ConsulClient,
    timeout: Duration,
    endpoint: impl Fn(&Instance) -> Result<Endpoint, String>,
    instances: Weak<Shared>,
    stop: CancellationToken,
    logger: slog::Logger,
) {
    let mut known: BTreeMap<String, Instance> = BTreeMap::new();
    let (mut index, mut pause) = (0u64, Duration::from_millis(250));
    let mut unreachable = false;
    loop {
        let started = tokio::time::Instant::now();
        let answer = tokio::select! {
            answer = client.healthy(&target.service, index, target.wait, timeout) => answer,
            // Every client of the instances is gone: so is the watcher.
            () = stop.cancelled() => return,
        };
        match answer {
            Ok(healthy) => {
                let Some(shared) = instances.upgrade() else {
                    return;
                };
                let instances_now = Instances { shared };
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
                apply(&instances_now, &mut known, now, &endpoint, &logger);
                instances_now.shared.ready.send_replace(true);
                drop(instances_now);
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
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => return,
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };

    /// A port where nothing listens (connections refused) until [`listen`].
    /// A port bound but not listening: a connection to it is refused, and no other process (a
    /// parallel test) can take it meanwhile, as it could a port released after a look.
    fn reserved() -> (tokio::net::TcpSocket, u16) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let port = socket.local_addr().unwrap().port();
        (socket, port)
    }

    /// Accepts connections on a reserved socket and holds them (enough for a plaintext HTTP/2
    /// connect).
    fn listen(socket: tokio::net::TcpSocket) -> tokio::task::JoinHandle<()> {
        let listener = socket.listen(64).unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        })
    }

    fn endpoint(port: u16) -> Endpoint {
        Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_timeout(Duration::from_millis(500))
    }

    /// The keys `picks` calls pick, once each, with nothing tried.
    fn picked(instances: &Instances, picks: usize) -> std::collections::BTreeSet<u64> {
        (0..picks)
            .map(|_| instances.pick(&[]).expect("an instance").key())
            .collect()
    }

    #[tokio::test]
    async fn an_instance_calls_cannot_reach_is_out_until_a_probe_connects() {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let instances = Instances::new(
            BACKOFF,
            Duration::from_millis(500),
            logger,
            CancellationToken::new(),
        );
        let ((up_socket, up), (down_socket, down)) = (reserved(), reserved());
        let _up = listen(up_socket);
        instances.upsert("up", endpoint(up));
        instances.upsert("down", endpoint(down));
        let keys: Vec<u64> = instances.shared.members().iter().map(|m| m.key).collect();
        let (up_key, down_key) = (keys[0], keys[1]);
        assert_eq!(picked(&instances, 50), [up_key, down_key].into());

        // A call on `down` failed: out at once, every call goes to `up`.
        let pick = std::iter::repeat_with(|| instances.pick(&[]).unwrap())
            .find(|p| p.key() == down_key)
            .unwrap();
        instances.failed(&pick);
        assert_eq!(picked(&instances, 50), [up_key].into());
        // A retry goes elsewhere; its in-flight count is back to 0 once the pick is dropped.
        assert_eq!(instances.pick(&[down_key]).unwrap().key(), up_key);
        drop(pick);
        assert!(
            instances
                .shared
                .members()
                .iter()
                .all(|m| m.in_flight.load(Ordering::Relaxed) == 0)
        );

        // Every instance out: calls still go somewhere, first to those they have not tried.
        let pick = instances.pick(&[]).unwrap();
        assert_eq!(pick.key(), up_key);
        instances.failed(&pick);
        assert!(
            instances
                .shared
                .members()
                .iter()
                .all(|m| m.health.is_ejected())
        );
        assert_eq!(instances.pick(&[up_key]).unwrap().key(), down_key);
        assert!(!instances.exhausted(&[up_key]));
        assert!(instances.exhausted(&[up_key, down_key]));
        assert!(instances.pick(&[up_key, down_key]).is_some());
        drop(pick);

        // `up`'s probe (after 100 ms) connects: back. `down`'s are refused, 100 ms after its
        // ejection, then 200 and 400 ms apart, until something listens there: its probe at
        // 700 ms connects.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(picked(&instances, 50), [up_key].into());
        let _down = listen(down_socket);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(picked(&instances, 50), [up_key, down_key].into());

        // Consul drops `down`: gone, probes and all; a call never finds it again.
        instances.remove("down");
        assert_eq!(picked(&instances, 50), [up_key].into());
        instances.remove("up");
        assert!(instances.pick(&[]).is_none());
    }

    #[test]
    fn a_dns_target_is_a_host_and_port_for_the_system_resolver() {
        assert_eq!(
            DnsTarget::parse("dns:///go-example-grpc:9090"),
            Some(Ok(DnsTarget {
                host: "go-example-grpc".into(),
                port: 9090
            }))
        );
        assert_eq!(DnsTarget::parse("https://a:1"), None);
        for bad in [
            "dns://8.8.8.8/grpc:9090",
            "dns:///grpc",
            "dns:///grpc:0",
            "dns:///:9090",
            "dns:///grpc:http",
        ] {
            assert!(matches!(DnsTarget::parse(bad), Some(Err(_))), "{bad}");
        }
    }

    /// Every address the name resolves to is an instance; one gone is dropped at the next
    /// lookup, one new joins; a failed lookup keeps the last ones.
    #[tokio::test]
    async fn the_addresses_of_a_name_are_the_instances_and_follow_its_answers() {
        type Answer = std::io::Result<Vec<std::net::SocketAddr>>;
        let answers = Arc::new(Mutex::new(Ok(vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.2:1".parse().unwrap(),
        ]) as Answer));
        let answering = answers.clone();
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let instances = resolve_with(
            DnsTarget {
                host: "grpc".into(),
                port: 1,
            },
            Duration::from_millis(20),
            move |host, port| {
                assert_eq!((host.as_str(), port), ("grpc", 1));
                let answer = match &*answering.lock().unwrap() {
                    Ok(addresses) => Ok(addresses.clone()),
                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                };
                async move { answer }
            },
            |instance| {
                Ok(endpoint(
                    instance.port + u16::from(instance.address.ends_with(".2")),
                ))
            },
            BACKOFF,
            Duration::from_millis(100),
            logger,
        );
        tokio::time::timeout(Duration::from_secs(5), instances.ready())
            .await
            .unwrap();
        let ids = |instances: &Instances| -> Vec<String> {
            instances
                .shared
                .members()
                .iter()
                .map(|m| m.id.clone())
                .collect()
        };
        assert_eq!(ids(&instances), ["127.0.0.1:1", "127.0.0.2:1"]);

        *answers.lock().unwrap() = Ok(vec!["127.0.0.2:1".parse().unwrap()]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ids(&instances), ["127.0.0.2:1"]);

        *answers.lock().unwrap() = Err(std::io::Error::other("SERVFAIL"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            ids(&instances),
            ["127.0.0.2:1"],
            "kept while the name fails"
        );

        *answers.lock().unwrap() = Ok(vec![
            "127.0.0.3:1".parse().unwrap(),
            "[::ffff:127.0.0.2]:1".parse().unwrap(),
        ]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ids(&instances), ["127.0.0.2:1", "127.0.0.3:1"]);
    }

    /// A Consul agent double answering every health query with `body` at index 7.
    async fn agent(body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut head, mut buf) = (Vec::new(), [0u8; 4096]);
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nX-Consul-Index: 7\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_instance_outside_the_allowed_networks_is_never_dialled() {
        // Only the loopback instance may be dialled: 8.8.8.8 is outside the networks, and a
        // name cannot be checked. Nothing here connects anywhere but loopback.
        let agent = agent(
            r#"[{"Node":{"Address":"8.8.8.8"},"Service":{"ID":"far","Address":"8.8.8.8","Port":50051}},
                {"Node":{"Address":"127.0.0.1"},"Service":{"ID":"near","Address":"127.0.0.1","Port":50051}},
                {"Node":{"Address":"10.0.0.1"},"Service":{"ID":"named","Address":"consul.example.com","Port":50051}},
                {"Node":{"Address":"10.0.0.1"},"Service":{"ID":"mapped","Address":"::ffff:8.8.4.4","Port":50051}}]"#,
        )
        .await;
        let networks = ["127.0.0.0/8", "10.0.0.0/8"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let dialled: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = Arc::clone(&dialled);
        // Nothing is served there: only which instances are dialled matters.
        let (_held, port) = reserved();
        let target = Target {
            agent: agent.clone(),
            service: "hello".into(),
            wait: Duration::from_secs(1),
        };
        let client = ConsulClient::new(
            &agent,
            &secrecy::SecretString::from(""),
            Duration::from_secs(1),
        )
        .unwrap();
        let instances = discover(
            target,
            client,
            Duration::from_secs(1),
            within(networks, move |instance: &Instance| {
                seen.lock().unwrap().push(instance.address.clone());
                Ok(endpoint(port))
            }),
            BACKOFF,
            Duration::from_millis(500),
            slog::Logger::root(slog::Discard, slog::o!()),
        );
        tokio::time::timeout(Duration::from_secs(5), instances.ready())
            .await
            .unwrap();
        // A few more answers (each at least MIN_QUERY_INTERVAL apart): still never dialled.
        tokio::time::sleep(MIN_QUERY_INTERVAL * 3).await;
        assert_eq!(*dialled.lock().unwrap(), ["127.0.0.1"]);
        let members: Vec<String> = instances
            .shared
            .members()
            .iter()
            .map(|m| m.id.clone())
            .collect();
        assert_eq!(members, ["near"]);
    }
}
