//! The clients' calls, traced: the one place that knows `goex-tracing` and the client crates.
//! The database reports each MySQL statement to a [`StatementObserver`] of its own, Redis each
//! command to a [`CommandObserver`]; the adapters below make each a client span of the request
//! being served (docs/tracing.md, "Database and Redis spans"). Neither client crate depends on
//! OpenTelemetry.

use goex_database::{Statement, StatementEnd, StatementObserver, summarize};
use goex_redis::{Command, CommandEnd, CommandObserver, RedisError};
use goex_tracing::{KeyValue, Span, Tracing};

/// The name a statement's span has until it is named after its operation and table.
const STATEMENT_SPAN: &str = "db";

/// A span per statement of a sampled request (a statement made outside a request, or in one
/// that is not recorded, is left alone: nothing is formatted for it).
pub struct TracedStatements(pub Tracing);

impl StatementObserver for TracedStatements {
    fn start(&self, statement: &Statement<'_>) -> Option<Box<dyn StatementEnd>> {
        let parent = goex_tracing::current().filter(|parent| parent.is_sampled())?;
        let mut span = self.0.client_span(STATEMENT_SPAN, &parent)?;
        let sql = statement.sql.to_string();
        let (operation, table) = summarize(&sql);
        span.rename(match table {
            Some(table) => format!("{operation} {table}"),
            None => operation.to_owned(),
        });
        let (host, port) = statement
            .server
            .rsplit_once(':')
            .map_or((statement.server, None), |(host, port)| {
                (host, port.parse::<i64>().ok())
            });
        span.set_attributes([
            KeyValue::new("db.system.name", statement.system),
            KeyValue::new("db.operation.name", operation),
            KeyValue::new("server.address", host.to_owned()),
        ]);
        if let Some(table) = table {
            span.set_attributes([KeyValue::new("db.collection.name", table.to_owned())]);
        }
        if let Some(port) = port {
            span.set_attributes([KeyValue::new("server.port", port)]);
        }
        Some(Box::new(StatementSpan(span)))
    }
}

/// A statement's span, ended with it.
struct StatementSpan(Span);

impl StatementEnd for StatementSpan {
    fn end(self: Box<Self>, error: Option<&diesel::result::Error>) {
        let mut span = self.0;
        if let Some(error) = error {
            // The kind only: the error's text may quote the statement.
            let kind = match error {
                diesel::result::Error::DatabaseError(kind, _) => format!("{kind:?}"),
                _ => "diesel".to_owned(),
            };
            span.set_attributes([KeyValue::new("error.type", kind.clone())]);
            span.set_error(kind);
        }
        span.end();
    }
}

/// The name a command's span has until it is named after the command.
const COMMAND_SPAN: &str = "redis";

/// A span per Redis command of a sampled request.
pub struct TracedCommands(pub Tracing);

impl CommandObserver for TracedCommands {
    fn start(&self, command: &Command<'_>) -> Option<Box<dyn CommandEnd>> {
        let parent = goex_tracing::current().filter(|parent| parent.is_sampled())?;
        let mut span = self.0.client_span(COMMAND_SPAN, &parent)?;
        span.rename(command.name.to_owned());
        span.set_attributes([
            KeyValue::new("db.system.name", "redis"),
            KeyValue::new("db.operation.name", command.name.to_owned()),
        ]);
        if let Some((host, port)) = command.server.and_then(|s| s.rsplit_once(':')) {
            span.set_attributes([KeyValue::new("server.address", host.to_owned())]);
            if let Ok(port) = port.parse::<i64>() {
                span.set_attributes([KeyValue::new("server.port", port)]);
            }
        }
        Some(Box::new(CommandSpan(span)))
    }
}

/// A command's span, ended with it.
struct CommandSpan(Span);

impl CommandEnd for CommandSpan {
    fn end(self: Box<Self>, error: Option<&RedisError>) {
        let mut span = self.0;
        if let Some(error) = error {
            // The kind only: a server's refusal may quote the command.
            let kind = match error {
                RedisError::Unavailable(_) => "unavailable",
                RedisError::Command(_) => "command",
                RedisError::Settings(_) => "settings",
            };
            span.set_attributes([KeyValue::new("error.type", kind)]);
            span.set_error(kind);
        }
        span.end();
    }
}
