//! The clients' calls, traced: the one place that knows `goex-tracing` and the client crates.
//! The database reports each MySQL statement to a [`StatementObserver`] of its own, Redis each
//! command to a [`CommandObserver`]; the adapters below make each a client span of the request
//! being served (docs/tracing.md, "Database and Redis spans"). Neither client crate depends on
//! OpenTelemetry.

use std::borrow::Cow;

use goex_database::{Statement, StatementEnd, StatementObserver, summarize};
use goex_redis::{Command, CommandEnd, CommandObserver, RedisError};
use goex_tracing::{KeyValue, Span, Tracing};

/// A span per statement of a sampled request (a statement made outside a request, or in one
/// that is not recorded, is left alone: nothing is formatted for it).
pub struct TracedStatements(pub Tracing);

impl StatementObserver for TracedStatements {
    fn start(&self, statement: &Statement<'_>) -> Option<Box<dyn StatementEnd>> {
        let mut span = call_span(&self.0, "db")?;
        let sql = statement.sql.to_string();
        let (operation, table) = summarize(&sql);
        span.rename(match table {
            Some(table) => format!("{operation} {table}"),
            None => operation.to_owned(),
        });
        span.set_attributes([
            KeyValue::new("db.system.name", statement.system),
            KeyValue::new("db.operation.name", operation),
        ]);
        if let Some(table) = table {
            span.set_attributes([KeyValue::new("db.collection.name", table.to_owned())]);
        }
        name_server(&mut span, statement.server);
        Some(Box::new(CallSpan(span)))
    }
}

impl StatementEnd for CallSpan {
    fn end(self: Box<Self>, error: Option<&diesel::result::Error>) {
        // The kind only: the error's text may quote the statement.
        self.finish(error.map(|error| match error {
            diesel::result::Error::DatabaseError(kind, _) => Cow::Owned(format!("{kind:?}")),
            _ => Cow::Borrowed("diesel"),
        }));
    }
}

/// A span per Redis command of a sampled request.
pub struct TracedCommands(pub Tracing);

impl CommandObserver for TracedCommands {
    fn start(&self, command: &Command<'_>) -> Option<Box<dyn CommandEnd>> {
        let mut span = call_span(&self.0, "redis")?;
        let name = command.name();
        span.rename(name.clone().into_owned());
        span.set_attributes([
            KeyValue::new("db.system.name", "redis"),
            KeyValue::new("db.operation.name", name),
        ]);
        if let Some(server) = command.server {
            name_server(&mut span, server);
        }
        Some(Box::new(CallSpan(span)))
    }
}

impl CommandEnd for CallSpan {
    fn end(self: Box<Self>, error: Option<&RedisError>) {
        // The kind only: a server's refusal may quote the command.
        self.finish(error.map(|error| {
            Cow::Borrowed(match error {
                RedisError::Unavailable(_) => "unavailable",
                RedisError::Command(_) => "command",
                RedisError::Settings(_) => "settings",
            })
        }));
    }
}

/// A client span named `name` (until renamed), child of the sampled request being served; `None`
/// outside a request or when it is not sampled.
fn call_span(tracing: &Tracing, name: &'static str) -> Option<Span> {
    let parent = goex_tracing::current().filter(|parent| parent.is_sampled())?;
    tracing.client_span(name, &parent)
}

/// `server.address` and `server.port` of `server` (`host:port`).
fn name_server(span: &mut Span, server: &str) {
    let (host, port) = server.rsplit_once(':').unwrap_or((server, ""));
    span.set_attributes([KeyValue::new("server.address", host.to_owned())]);
    if let Ok(port) = port.parse::<i64>() {
        span.set_attributes([KeyValue::new("server.port", port)]);
    }
}

/// A call's span, ended with the call.
struct CallSpan(Span);

impl CallSpan {
    /// Ends it, failed with `error_kind` when the call failed.
    fn finish(self, error_kind: Option<Cow<'static, str>>) {
        let mut span = self.0;
        if let Some(kind) = error_kind {
            span.set_attributes([KeyValue::new("error.type", kind.clone())]);
            span.set_error(kind);
        }
        span.end();
    }
}
