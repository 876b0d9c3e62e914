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
        let mut span = self.0.call_span("db")?;
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
        span.set_server(statement.server);
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
        let mut span = self.0.call_span("redis")?;
        let name = command.name();
        span.rename(name.clone().into_owned());
        span.set_attributes([
            KeyValue::new("db.system.name", "redis"),
            KeyValue::new("db.operation.name", name),
        ]);
        if let Some(server) = command.server {
            span.set_server(server);
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

/// A call's span, ended with the call.
struct CallSpan(Span);

impl CallSpan {
    /// Ends it, failed with `error_kind` when the call failed.
    fn finish(self, error_kind: Option<Cow<'static, str>>) {
        let mut span = self.0;
        if let Some(kind) = error_kind {
            span.fail(kind);
        }
        span.end();
    }
}
