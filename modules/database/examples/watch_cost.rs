//! The cost of one `ChangeWatch::version()` (docs/benchmarks.md, issue 23), against the same
//! pragma prepared on every call: `cargo run --release -p goex-database --example watch_cost`.

use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use goex_database::watch::ChangeWatch;

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    data_version: i64,
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    conn.batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER);")
        .unwrap();
    let watch = ChangeWatch::new(path);
    let n = 200_000;
    let started = std::time::Instant::now();
    for _ in 0..n {
        watch.version().unwrap();
    }
    println!(
        "ChangeWatch::version(): {:?} per call",
        started.elapsed() / n
    );
    let started = std::time::Instant::now();
    for _ in 0..n {
        diesel::sql_query("PRAGMA data_version")
            .get_result::<Row>(&mut conn)
            .unwrap();
    }
    println!(
        "sql_query, prepared per call: {:?} per call",
        started.elapsed() / n
    );
}
