//! The client against the Jenkins double (tests/jenkins/jenkins_double.py), which enforces basic
//! auth and session-bound CSRF crumbs as Jenkins does; and against a real Jenkins when
//! `JENKINS_URL`, `JENKINS_USER` and `JENKINS_TOKEN` are set.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use goex_jenkins::{
    BuildResult, JenkinsClient, JenkinsError, JenkinsSettings, JobOutcome, queue_id_from_location,
};

const USER: &str = "admin";
const TOKEN: &str = "11f2b4c9d0e8a7f6b5c4d3e2f1a0b9c8d7";
const PASSWORD: &str = "correct horse battery staple";

/// The seeded job's console (the double's SEED_CONSOLE).
const SEED_CONSOLE: &str = "Started by user admin\nRunning as SYSTEM\n\
    Building in workspace /var/jenkins_home/workspace/go-test\n\
    [go-test] $ /bin/sh -xe /tmp/jenkins1.sh\n+ echo hello go_example\nhello go_example\n\
    Finished: SUCCESS\n";

/// A running double, killed when dropped.
struct Double {
    child: Child,
    port: u16,
    prefix: String,
}

impl Double {
    fn start(extra: &[&str]) -> Double {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/jenkins/jenkins_double.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args([
                "--port",
                "0",
                "--user",
                USER,
                "--token",
                TOKEN,
                "--password",
                PASSWORD,
            ])
            .args(["--seed-job", "go-test", "--exit-on-stdin-eof"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the double");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the double said {line:?}"));
        let prefix = extra
            .windows(2)
            .find(|w| w[0] == "--prefix")
            .map_or(String::new(), |w| w[1].to_owned());
        Double {
            child,
            port,
            prefix,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.prefix)
    }

    fn settings(&self) -> JenkinsSettings {
        JenkinsSettings::new(self.url(), USER, TOKEN)
    }

    fn client(&self) -> JenkinsClient {
        JenkinsClient::new(&self.settings()).unwrap()
    }

    async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("http://127.0.0.1:{}/_double/stats", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stat(&self, name: &str) -> u64 {
        self.stats().await[name].as_u64().unwrap()
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A freestyle job's config.xml: string parameters with defaults, a quiet period, a shell step.
fn project_xml(
    params: &[(&str, &str)],
    quiet_period: Option<u32>,
    command: Option<&str>,
) -> String {
    let mut xml = String::from(
        "<?xml version='1.1' encoding='UTF-8'?>\n<project>\n  <description>made by a test</description>\n  <properties>\n",
    );
    if !params.is_empty() {
        xml.push_str(
            "    <hudson.model.ParametersDefinitionProperty>\n      <parameterDefinitions>\n",
        );
        for (name, default) in params {
            xml.push_str(&format!(
                "        <hudson.model.StringParameterDefinition><name>{name}</name>\
                 <defaultValue>{default}</defaultValue><trim>false</trim>\
                 </hudson.model.StringParameterDefinition>\n"
            ));
        }
        xml.push_str(
            "      </parameterDefinitions>\n    </hudson.model.ParametersDefinitionProperty>\n",
        );
    }
    xml.push_str(
        "  </properties>\n  <scm class=\"hudson.scm.NullSCM\"/>\n  <disabled>false</disabled>\n",
    );
    if let Some(q) = quiet_period {
        xml.push_str(&format!("  <quietPeriod>{q}</quietPeriod>\n"));
    }
    xml.push_str("  <builders>\n");
    if let Some(c) = command {
        xml.push_str(&format!(
            "    <hudson.tasks.Shell><command>{c}</command></hudson.tasks.Shell>\n"
        ));
    }
    xml.push_str("  </builders>\n  <publishers/>\n  <buildWrappers/>\n</project>\n");
    xml
}

fn status_of(e: &JenkinsError) -> Option<(u16, &str)> {
    match e {
        JenkinsError::Status { status, message } => Some((*status, message.as_str())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_nodes_views_and_plugins() {
    let double = Double::start(&[]);
    let client = double.client();
    let info = client.info().await.unwrap();
    assert_eq!(info.class, "hudson.model.Hudson");
    assert_eq!(info.mode, "NORMAL");
    assert_eq!(info.version.as_deref(), Some("2.462.3"));
    assert!(info.use_crumbs && info.use_security);
    assert_eq!(info.jobs.len(), 1);
    assert_eq!(info.jobs[0].name, "go-test");
    assert_eq!(info.jobs[0].color.as_deref(), Some("blue"));
    client.poll().await.unwrap();
    assert_eq!(client.job_names().await.unwrap(), ["go-test"]);
    let jobs = client.jobs().await.unwrap();
    assert_eq!(jobs[0].class, "hudson.model.FreeStyleProject");
    assert!(!jobs[0].is_folder());

    let views = client.views().await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].name, "all");
    let all = client.view("all").await.unwrap();
    assert_eq!(all.class, "hudson.model.AllView");
    assert_eq!(all.jobs[0].name, "go-test");
    assert!(matches!(
        client.view("nope").await,
        Err(JenkinsError::NotFound(w)) if w == "view nope"
    ));

    let nodes = client.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].display_name, "Built-In Node");
    assert_eq!(nodes[0].num_executors, 2);
    assert!(!nodes[0].offline);
    assert_eq!(
        client.node("(built-in)").await.unwrap().display_name,
        "Built-In Node"
    );
    assert!(matches!(
        client.node("agent-7").await,
        Err(JenkinsError::NotFound(_))
    ));

    let plugins = client.plugins().await.unwrap();
    assert!(
        plugins
            .iter()
            .any(|p| p.short_name == "git" && p.has_update)
    );
    let folders = client.plugin("cloudbees-folder").await.unwrap().unwrap();
    assert_eq!(folders.long_name, "Folders Plugin");
    assert!(folders.active && folders.enabled);
    assert!(client.plugin("no-such-plugin").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_jobs_last_build_and_its_console() {
    let double = Double::start(&[]);
    let client = double.client();
    let job = client.job("go-test").await.unwrap();
    assert_eq!(job.full_name, "go-test");
    assert_eq!(job.next_build_number, 2);
    assert!(job.buildable && !job.in_queue);
    assert!(job.is_parameterized());
    let p = job.parameters().next().unwrap();
    assert_eq!(p.name, "params1");
    assert_eq!(p.kind, "StringParameterDefinition");
    assert_eq!(
        p.default_parameter_value.as_ref().unwrap().value,
        "defaultVal"
    );
    assert_eq!(job.outcome(), JobOutcome::Succeeded);

    let last = client.last_build("go-test").await.unwrap().unwrap();
    assert_eq!(last.number, 1);
    assert_eq!(last.result, Some(BuildResult::Success));
    assert!(!last.building);
    assert_eq!(last.duration, 1000);
    assert_eq!(client.build("go-test", 1).await.unwrap(), last);
    assert_eq!(client.builds("go-test").await.unwrap()[0].number, 1);

    let console = client.last_build_console("go-test").await.unwrap().unwrap();
    assert_eq!(console.text, SEED_CONSOLE);
    assert_eq!(console.next_start, SEED_CONSOLE.len() as u64);
    assert!(!console.more && !console.truncated);
    let tail = client.console_text("go-test", 1, 150).await.unwrap();
    assert_eq!(tail.text, &SEED_CONSOLE[150..]);
    assert_eq!(tail.next_start, SEED_CONSOLE.len() as u64);

    assert!(matches!(
        client.build("go-test", 99).await,
        Err(JenkinsError::NotFound(w)) if w == "build 99 of job go-test"
    ));
    assert!(matches!(
        client.console_text("go-test", 99, 0).await,
        Err(JenkinsError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_never_built_has_no_last_build_and_a_missing_one_is_not_found() {
    let double = Double::start(&[]);
    let client = double.client();
    let job = client
        .create_job("fresh", &project_xml(&[], None, None))
        .await
        .unwrap();
    assert_eq!(job.name, "fresh");
    assert_eq!(job.color.as_deref(), Some("notbuilt"));
    assert_eq!(job.outcome(), JobOutcome::NeverBuilt);
    assert!(client.last_build("fresh").await.unwrap().is_none());
    assert!(client.last_build_console("fresh").await.unwrap().is_none());
    for missing in [
        client.last_build("missing").await.map(|_| ()),
        client.job("missing").await.map(|_| ()),
        client.job_config("missing").await.map(|_| ()),
        client.delete_job("missing").await,
    ] {
        assert!(
            matches!(&missing, Err(JenkinsError::NotFound(w)) if w == "job missing"),
            "{missing:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_crumb_serves_many_concurrent_posts() {
    let double = Double::start(&[]);
    let client = double.client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let client = client.clone();
        tasks.spawn(async move {
            client
                .create_job(&format!("job-{i}"), &project_xml(&[], None, None))
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    assert_eq!(client.jobs().await.unwrap().len(), 17);
    let stats = double.stats().await;
    assert_eq!(stats["crumbs_issued"], 1, "{stats}");
    assert_eq!(stats["sessions_opened"], 1, "{stats}");
    assert_eq!(stats["posts"], 16, "{stats}");
    assert_eq!(stats["posts_refused_for_crumb"], 0, "{stats}");
    let crumb = client.crumb().await.unwrap().unwrap();
    assert_eq!(crumb.crumb_request_field, "Jenkins-Crumb");
    assert_eq!(double.stat("crumbs_issued").await, 1, "the crumb is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_crumb_is_fetched_again_and_the_post_goes_through() {
    let double = Double::start(&["--crumb-ttl", "1"]);
    let client = double.client();
    client
        .create_job("before", &project_xml(&[], None, None))
        .await
        .unwrap();
    assert_eq!(double.stat("crumbs_issued").await, 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // The session (and so the crumb) expired: the POSTs are refused, and the eight of them fetch
    // one new crumb between them.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = client.clone();
        tasks.spawn(async move {
            client
                .create_job(&format!("after-{i}"), &project_xml(&[], None, None))
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let stats = double.stats().await;
    assert_eq!(stats["crumbs_issued"], 2, "{stats}");
    assert_eq!(stats["sessions_opened"], 2, "{stats}");
    // Each POST sent before the new crumb arrived was refused once (how many depends on
    // scheduling); none twice.
    let refused = stats["posts_refused_for_crumb"].as_u64().unwrap();
    assert!((1..=8).contains(&refused), "{stats}");
    assert_eq!(client.jobs().await.unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_unauthorized_and_a_password_works_too() {
    let double = Double::start(&[]);
    let wrong =
        JenkinsClient::new(&JenkinsSettings::new(double.url(), USER, "not-the-token")).unwrap();
    let e = wrong.info().await.unwrap_err();
    assert!(
        matches!(&e, JenkinsError::Unauthorized(m) if m.contains("Invalid password/token for user: admin")),
        "{e:?}"
    );
    assert!(!e.to_string().contains("not-the-token"));
    let e = wrong
        .create_job("x", &project_xml(&[], None, None))
        .await
        .unwrap_err();
    assert!(matches!(e, JenkinsError::Unauthorized(_)), "{e:?}");
    assert!(matches!(
        wrong.crumb().await,
        Err(JenkinsError::Unauthorized(_))
    ));
    let stranger =
        JenkinsClient::new(&JenkinsSettings::new(double.url(), "mallory", TOKEN)).unwrap();
    assert!(matches!(
        stranger.poll().await,
        Err(JenkinsError::Unauthorized(_))
    ));
    let anonymous = JenkinsClient::new(&JenkinsSettings::new(double.url(), "", "")).unwrap();
    assert!(matches!(
        anonymous.poll().await,
        Err(JenkinsError::Unauthorized(_))
    ));
    assert!(double.stat("unauthorized").await >= 5);

    let with_password =
        JenkinsClient::new(&JenkinsSettings::new(double.url(), USER, PASSWORD)).unwrap();
    with_password
        .create_job("by-password", &project_xml(&[], None, None))
        .await
        .unwrap();
}

/// The double is no pushover: it refuses what Jenkins refuses, to a client other than ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_double_refuses_posts_without_a_valid_crumb_and_requests_without_auth() {
    let double = Double::start(&[]);
    let base = double.url();
    let raw = reqwest::Client::new();

    let anonymous = raw.get(format!("{base}/api/json")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["WWW-Authenticate"],
        "Basic realm=\"Jenkins\""
    );

    let no_crumb = raw
        .post(format!("{base}/job/go-test/buildWithParameters"))
        .basic_auth(USER, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(no_crumb.status(), 403);
    assert!(
        no_crumb
            .text()
            .await
            .unwrap()
            .contains("No valid crumb was included in the request")
    );

    // A crumb is only good in the session it was issued for.
    let crumb: serde_json::Value = raw
        .get(format!("{base}/crumbIssuer/api/json"))
        .basic_auth(USER, Some(TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let crumb = crumb["crumb"].as_str().unwrap().to_owned();
    let without_session = raw
        .post(format!("{base}/job/go-test/buildWithParameters"))
        .basic_auth(USER, Some(TOKEN))
        .header("Jenkins-Crumb", &crumb)
        .send()
        .await
        .unwrap();
    assert_eq!(without_session.status(), 403);

    let in_session = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let crumb: serde_json::Value = in_session
        .get(format!("{base}/crumbIssuer/api/json"))
        .basic_auth(USER, Some(TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let forged = in_session
        .post(format!("{base}/job/go-test/buildWithParameters"))
        .basic_auth(USER, Some(TOKEN))
        .header("Jenkins-Crumb", "0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let good = in_session
        .post(format!("{base}/job/go-test/buildWithParameters"))
        .basic_auth(USER, Some(TOKEN))
        .header("Jenkins-Crumb", crumb["crumb"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 201);
    let location = good.headers()["Location"].to_str().unwrap();
    assert_eq!(queue_id_from_location(location), Some(1), "{location}");
    assert_eq!(double.stat("posts_refused_for_crumb").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_csrf_protection_no_crumb_is_sent() {
    let double = Double::start(&["--no-csrf"]);
    let client = double.client();
    assert!(client.crumb().await.unwrap().is_none());
    assert!(!client.info().await.unwrap().use_crumbs);
    client
        .create_job("no-crumb", &project_xml(&[], None, None))
        .await
        .unwrap();
    let queue_id = client.build_job("no-crumb", &[]).await.unwrap();
    assert_eq!(
        client
            .wait_for_build("no-crumb", queue_id, Duration::from_secs(5))
            .await
            .unwrap(),
        1
    );
    assert_eq!(double.stat("crumbs_issued").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_run_and_their_console_pages_until_done() {
    let double = Double::start(&["--build-duration", "1.2"]);
    let client = double.client();
    let xml = project_xml(&[("result", "SUCCESS"), ("log_lines", "8")], None, None);
    client.create_job("pages", &xml).await.unwrap();

    let queue_id = client
        .build_job("pages", &[("result", "FAILURE")])
        .await
        .unwrap();
    let number = client
        .wait_for_build("pages", queue_id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(number, 1);
    let running = client.build("pages", number).await.unwrap();
    assert!(running.building);
    assert_eq!(running.result, None);
    assert_eq!(running.queue_id, queue_id as i64);

    let mut text = String::new();
    let mut start = 0;
    let mut reads_with_more = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let chunk = client.console_text("pages", number, start).await.unwrap();
        assert!(!chunk.truncated);
        assert_eq!(chunk.next_start, start + chunk.text.len() as u64);
        text.push_str(&chunk.text);
        start = chunk.next_start;
        if !chunk.more {
            break;
        }
        reads_with_more += 1;
        assert!(Instant::now() < deadline, "the build never finished");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        reads_with_more >= 3,
        "only {reads_with_more} reads while building"
    );
    assert!(text.starts_with("Started by user admin\n"), "{text}");
    assert!(text.contains("progress 8/8\n"), "{text}");
    assert!(text.ends_with("Finished: FAILURE\n"), "{text}");
    assert_eq!(
        client.console_text("pages", number, 0).await.unwrap().text,
        text,
        "the pieces make the whole"
    );
    let done = client.build("pages", number).await.unwrap();
    assert_eq!(done.result, Some(BuildResult::Failure));
    assert!(!done.building && done.duration > 0);
    assert_eq!(
        client.job("pages").await.unwrap().outcome(),
        JobOutcome::Failed
    );

    // Without parameters, the parameterized job builds with its defaults.
    let queue_id = client.build_job("pages", &[]).await.unwrap();
    let number = client
        .wait_for_build("pages", queue_id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(number, 2);
    // A job without parameters builds through /build; its shell step's `exit 1` fails it.
    client
        .create_job(
            "plain",
            &project_xml(&[], None, Some("echo about to fail\nexit 1")),
        )
        .await
        .unwrap();
    let queue_id = client.build_job("plain", &[]).await.unwrap();
    let number = client
        .wait_for_build("plain", queue_id, Duration::from_secs(5))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let build = loop {
        let build = client.build("plain", number).await.unwrap();
        if !build.building {
            break build;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(build.result, Some(BuildResult::Failure));
    let log = client.console_text("plain", number, 0).await.unwrap().text;
    assert!(
        log.contains("+ exit 1\n") && log.contains("about to fail\n"),
        "{log}"
    );
    let last = client.last_build("pages").await.unwrap().unwrap();
    assert_eq!(last.number, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_read_is_capped_and_says_so() {
    let double = Double::start(&[]);
    let mut settings = double.settings();
    settings.max_console_bytes = 64;
    let client = JenkinsClient::new(&settings).unwrap();
    let chunk = client.console_text("go-test", 1, 0).await.unwrap();
    assert!(chunk.truncated);
    assert_eq!(chunk.text, &SEED_CONSOLE[..64]);
    assert_eq!(
        chunk.next_start,
        SEED_CONSOLE.len() as u64,
        "X-Text-Size as sent"
    );
    assert!(!chunk.more);
    let exact = client
        .console_text("go-test", 1, (SEED_CONSOLE.len() - 64) as u64)
        .await
        .unwrap();
    assert!(!exact.truncated, "exactly the cap is not truncated");
    assert_eq!(exact.text, &SEED_CONSOLE[SEED_CONSOLE.len() - 64..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_items_are_listed_and_cancelled() {
    let double = Double::start(&[]);
    let client = double.client();
    client
        .create_job("slow", &project_xml(&[("which", "a")], Some(60), None))
        .await
        .unwrap();
    let a = client.build_job("slow", &[("which", "a")]).await.unwrap();
    let b = client.build_job("slow", &[("which", "b")]).await.unwrap();
    let c = client.build_job("slow", &[("which", "c")]).await.unwrap();
    assert_eq!(
        client.build_job("slow", &[("which", "a")]).await.unwrap(),
        a,
        "an identical request gets the waiting item"
    );
    let queue = client.queue().await.unwrap();
    assert_eq!(queue.iter().map(|q| q.id).collect::<Vec<_>>(), [a, b, c]);
    assert_eq!(queue[1].task.name, "slow");
    assert_eq!(queue[1].params.as_deref(), Some("\nwhich=b"));
    assert!(!queue[0].has_left());
    assert!(client.job("slow").await.unwrap().in_queue);
    let item = client.queue_item(a).await.unwrap();
    assert!(item.why.unwrap().contains("quiet period"));

    client.cancel_queue_item(a).await.unwrap();
    let left = client.queue_item(a).await.unwrap();
    assert!(left.has_left() && left.cancelled == Some(true) && left.executable.is_none());
    assert!(matches!(
        client.wait_for_build("slow", a, Duration::from_secs(5)).await,
        Err(JenkinsError::Cancelled(id)) if id == a
    ));
    let again = client.cancel_queue_item(a).await.unwrap_err();
    assert_eq!(
        status_of(&again),
        Some((500, format!("Could not cancel run for id {a}").as_str())),
        "{again:?}"
    );
    assert!(matches!(
        client.cancel_queue_item(9999).await,
        Err(JenkinsError::NotFound(w)) if w == "queue item 9999"
    ));
    assert!(matches!(
        client.queue_item(9999).await,
        Err(JenkinsError::NotFound(_))
    ));

    let not_yet = client
        .wait_for_build("slow", b, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(&not_yet, JenkinsError::NotStarted { queue_id, why, .. } if *queue_id == b && why.contains("quiet period")),
        "{not_yet:?}"
    );

    assert_eq!(client.cancel_all_queue_items().await.unwrap(), [b, c]);
    assert!(client.queue().await.unwrap().is_empty());
    assert!(client.cancel_all_queue_items().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_item_gone_from_the_queue_is_found_in_the_builds() {
    let double = Double::start(&["--left-ttl", "0"]);
    let client = double.client();
    client
        .create_job("quick", &project_xml(&[], None, None))
        .await
        .unwrap();
    client.build_job("quick", &[]).await.unwrap();
    let second = client.build_job("quick", &[]).await.unwrap();
    assert_eq!(second, 1, "identical requests share the waiting item");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(
        client.queue_item(second).await,
        Err(JenkinsError::NotFound(_))
    ));
    assert_eq!(
        client
            .wait_for_build("quick", second, Duration::from_secs(5))
            .await
            .unwrap(),
        1
    );
    let e = client
        .wait_for_build("quick", 4242, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, JenkinsError::NotFound(w) if w.contains("queue item 4242")),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_with_parents_and_jobs_in_them_renamed_copied_deleted() {
    let double = Double::start(&[]);
    let client = double.client();
    let c = client
        .create_folder("xudttest/folder1_test/c")
        .await
        .unwrap();
    assert_eq!(c.full_name, "xudttest/folder1_test/c");
    assert_eq!(c.class, goex_jenkins::FOLDER_MODE);
    let parent = client.folder("xudttest/folder1_test").await.unwrap();
    assert_eq!(parent.jobs.len(), 1);
    assert!(parent.jobs[0].is_folder());
    client.create_folder("xudttest/other").await.unwrap();
    assert_eq!(client.folder("xudttest").await.unwrap().jobs.len(), 2);

    let e = client.create_folder("xudttest/other").await.unwrap_err();
    assert_eq!(
        status_of(&e),
        Some((
            400,
            "A job already exists with the name \u{2018}other\u{2019}"
        )),
        "{e:?}"
    );

    // The original's calls: CreateJobInFolder(job.xml, "job_test", "xudttest", "folder1_test"),
    // then RenameJob("xudttest/job/folder1_test/job/job_test", "job_test1").
    let xml = project_xml(&[("params1", "defaultVal")], None, Some("echo in a folder"));
    let job = client
        .create_job_in_folder("xudttest/folder1_test", "job_test", &xml)
        .await
        .unwrap();
    assert_eq!(job.full_name, "xudttest/folder1_test/job_test");
    assert!(
        job.url
            .ends_with("/job/xudttest/job/folder1_test/job/job_test/")
    );
    assert_eq!(
        client
            .sub_job("xudttest/folder1_test", "job_test")
            .await
            .unwrap()
            .full_name,
        "xudttest/folder1_test/job_test"
    );
    let renamed = client
        .rename_job("xudttest/job/folder1_test/job/job_test", "job_test1")
        .await
        .unwrap();
    assert_eq!(renamed.full_name, "xudttest/folder1_test/job_test1");
    assert!(matches!(
        client.job("xudttest/folder1_test/job_test").await,
        Err(JenkinsError::NotFound(_))
    ));
    assert_eq!(
        client
            .job_config("xudttest/folder1_test/job_test1")
            .await
            .unwrap(),
        xml
    );

    let copy = client
        .copy_job("xudttest/folder1_test/job_test1", "the copy")
        .await
        .unwrap();
    assert_eq!(copy.full_name, "xudttest/folder1_test/the copy");
    assert!(copy.buildable, "the copy's config was saved once");
    assert_eq!(
        client
            .job_config("xudttest/folder1_test/the copy")
            .await
            .unwrap(),
        xml
    );
    let queue_id = client
        .build_job("xudttest/folder1_test/the copy", &[("params1", "x")])
        .await
        .unwrap();
    assert_eq!(
        client
            .wait_for_build(
                "xudttest/folder1_test/the copy",
                queue_id,
                Duration::from_secs(5)
            )
            .await
            .unwrap(),
        1
    );

    let changed = xml.replace("made by a test", "changed by a test");
    client
        .update_job_config("xudttest/folder1_test/job_test1", &changed)
        .await
        .unwrap();
    assert_eq!(
        client
            .job("xudttest/folder1_test/job_test1")
            .await
            .unwrap()
            .description
            .as_deref(),
        Some("changed by a test")
    );

    assert!(matches!(
        client.folder("xudttest/folder1_test/job_test1").await,
        Err(JenkinsError::NotFound(w)) if w.contains("it is a hudson.model.FreeStyleProject")
    ));
    client
        .delete_job("xudttest/folder1_test/the copy")
        .await
        .unwrap();
    assert!(matches!(
        client.job("xudttest/folder1_test/the copy").await,
        Err(JenkinsError::NotFound(_))
    ));
    client.delete_job("xudttest").await.unwrap();
    assert_eq!(client.job_names().await.unwrap(), ["go-test"]);
    assert!(matches!(
        client
            .create_job_in_folder("xudttest", "x", &xml)
            .await,
        Err(JenkinsError::NotFound(w)) if w == "folder xudttest"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_what_jenkins_said() {
    let double = Double::start(&[]);
    let client = double.client();
    let xml = project_xml(&[], None, None);
    let taken = client.create_job("go-test", &xml).await.unwrap_err();
    assert_eq!(
        status_of(&taken),
        Some((
            400,
            "A job already exists with the name \u{2018}go-test\u{2019}"
        ))
    );
    assert_eq!(
        taken.to_string(),
        "jenkins answered 400: A job already exists with the name \u{2018}go-test\u{2019}"
    );
    let unsafe_name = client.create_job("a#b", &xml).await.unwrap_err();
    assert_eq!(
        status_of(&unsafe_name),
        Some((400, "\u{2018}#\u{2019} is an unsafe character"))
    );
    assert!(matches!(
        client.create_job("a/..", &xml).await,
        Err(JenkinsError::InvalidName(_))
    ));

    client.create_job("plain", &xml).await.unwrap();
    let in_use = client.rename_job("plain", "go-test").await.unwrap_err();
    assert_eq!(
        status_of(&in_use),
        Some((400, "The name \u{201c}go-test\u{201d} is already in use."))
    );
    let not_parameterized = client.build_job("plain", &[("x", "1")]).await.unwrap_err();
    assert_eq!(
        status_of(&not_parameterized),
        Some((400, "plain is not parameterized"))
    );
    let bad_xml = client
        .update_job_config("plain", "<project><unclosed></project>")
        .await
        .unwrap_err();
    assert!(
        matches!(status_of(&bad_xml), Some((500, m)) if m.starts_with("java.io.IOException: Unable to read")),
        "{bad_xml:?}"
    );

    // A copy made behind the client's back is held back until its config is saved.
    let raw = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let crumb: serde_json::Value = raw
        .get(format!("{}/crumbIssuer/api/json", double.url()))
        .basic_auth(USER, Some(TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let copied = raw
        .post(format!(
            "{}/createItem?name=held&mode=copy&from=plain",
            double.url()
        ))
        .basic_auth(USER, Some(TOKEN))
        .header("Jenkins-Crumb", crumb["crumb"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(copied.status(), 302);
    let held = client.build_job("held", &[]).await.unwrap_err();
    assert_eq!(status_of(&held), Some((409, "held is not buildable")));
    let no_source = client.copy_job("nothing", "copy").await.unwrap_err();
    assert_eq!(status_of(&no_source), Some((400, "No such job: nothing")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_prefix_is_kept_on_every_request() {
    let double = Double::start(&["--prefix", "/jenkins"]);
    let client = JenkinsClient::new(&JenkinsSettings::new(
        format!("{}/", double.url()),
        USER,
        TOKEN,
    ))
    .unwrap();
    assert_eq!(
        client.base_url(),
        format!("http://127.0.0.1:{}/jenkins", double.port)
    );
    assert_eq!(
        client.info().await.unwrap().url.as_deref(),
        Some(format!("{}/", double.url()).as_str())
    );
    client.create_folder("f/g").await.unwrap();
    client
        .create_job_in_folder("f/g", "j", &project_xml(&[], None, None))
        .await
        .unwrap();
    let queue_id = client.build_job("f/g/j", &[]).await.unwrap();
    let number = client
        .wait_for_build("f/g/j", queue_id, Duration::from_secs(5))
        .await
        .unwrap();
    let console = client.console_text("f/g/j", number, 0).await.unwrap();
    assert!(console.text.contains("workspace/f/g/j"), "{}", console.text);
    let stats = double.stats().await;
    assert_eq!(stats["crumbs_issued"], 1, "{stats}");
    assert_eq!(stats["posts_refused_for_crumb"], 0, "{stats}");

    let unprefixed = JenkinsClient::new(&JenkinsSettings::new(
        format!("http://127.0.0.1:{}", double.port),
        USER,
        TOKEN,
    ))
    .unwrap();
    assert!(matches!(
        unprefixed.job("f").await,
        Err(JenkinsError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenkins_down_is_unreachable_within_the_connect_timeout() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut settings = JenkinsSettings::new(format!("http://127.0.0.1:{port}"), USER, TOKEN);
    settings.connect_timeout = Duration::from_secs(1);
    let client = JenkinsClient::new(&settings).expect("no connection at construction");
    let started = Instant::now();
    let e = client.info().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&e, JenkinsError::Unreachable(m) if m.starts_with("GET /api/json")),
        "{e:?}"
    );
    let e = client
        .create_job("x", &project_xml(&[], None, None))
        .await
        .unwrap_err();
    assert!(matches!(e, JenkinsError::Unreachable(_)), "{e:?}");
    assert!(!e.to_string().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_jenkins_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut settings = JenkinsSettings::new(format!("http://127.0.0.1:{port}"), USER, TOKEN);
    settings.request_timeout = Duration::from_millis(300);
    let client = JenkinsClient::new(&settings).unwrap();
    let started = Instant::now();
    let e = client.job("go-test").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&e, JenkinsError::Unreachable(m) if m == "GET /job/go-test/api/json: timed out"),
        "{e:?}"
    );
    holder.abort();
}

/// Runs against a real Jenkins when `JENKINS_URL`, `JENKINS_USER` and `JENKINS_TOKEN` are set
/// (the only test that may skip): info, the crumb, a folder and a job in it, a build, its
/// console, a rename and a copy, and the clean-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_jenkins_when_configured() {
    let (Ok(url), Ok(user), Ok(token)) = (
        std::env::var("JENKINS_URL"),
        std::env::var("JENKINS_USER"),
        std::env::var("JENKINS_TOKEN"),
    ) else {
        eprintln!(
            "real_jenkins_when_configured: JENKINS_URL, JENKINS_USER, JENKINS_TOKEN not set; skipped"
        );
        return;
    };
    let mut settings = JenkinsSettings::new(url, user, token);
    settings.request_timeout = Duration::from_secs(30);
    let client = JenkinsClient::new(&settings).unwrap();
    let info = client.info().await.unwrap();
    eprintln!(
        "jenkins {:?}, {} top-level jobs",
        info.version,
        info.jobs.len()
    );
    let crumb = client.crumb().await.unwrap();
    eprintln!(
        "crumb field: {:?}",
        crumb.as_ref().map(|c| c.crumb_request_field.clone())
    );

    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let has_folders = client.plugin("cloudbees-folder").await.unwrap().is_some();
    let (top, job_path) = if has_folders {
        let top = format!("goex-test-{stamp}");
        client.create_folder(&format!("{top}/inner")).await.unwrap();
        (top.clone(), format!("{top}/inner/echo"))
    } else {
        let top = format!("goex-test-{stamp}");
        (top.clone(), top)
    };
    let result = async {
        let xml = project_xml(&[("params1", "defaultVal")], None, None);
        client.create_job(&job_path, &xml).await?;
        let queue_id = client.build_job(&job_path, &[("params1", "real")]).await?;
        let number = client
            .wait_for_build(&job_path, queue_id, Duration::from_secs(120))
            .await?;
        let mut start = 0;
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let chunk = client.console_text(&job_path, number, start).await?;
            text.push_str(&chunk.text);
            start = chunk.next_start;
            if !chunk.more || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(text.contains("Finished: SUCCESS"), "{text}");
        let build = client.build(&job_path, number).await?;
        assert_eq!(build.result, Some(BuildResult::Success));
        assert_eq!(
            client.last_build(&job_path).await?.map(|b| b.number),
            Some(number)
        );
        let renamed = client.rename_job(&job_path, "renamed").await?;
        let copy = client.copy_job(&renamed.full_name, "copied").await?;
        assert!(copy.buildable, "the copy's config was saved once");
        client.delete_job(&copy.full_name).await?;
        Ok::<_, JenkinsError>(())
    }
    .await;
    client.delete_job(&top).await.unwrap();
    assert!(matches!(
        client.job(&top).await,
        Err(JenkinsError::NotFound(_))
    ));
    result.unwrap();
}
