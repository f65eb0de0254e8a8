//! Logging to stderr in the JSON line format go-plugin understands
//! (`@level`, `@message`, `@timestamp`, `@module` plus fields), so Terraform
//! re-logs each event at its own level under `TF_LOG` instead of lumping
//! everything under DEBUG.

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Map, Value as Json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Sets up logging to stderr, where Terraform collects plugin logs (shown
/// with `TF_LOG`). The level comes from `TF_LOG_PROVIDER`, else `TF_LOG`,
/// else `info`; the HTTP/2 and TLS libraries are held at `warn`. Called by
/// [`crate::serve`]; harmless to call again.
pub fn init_logging() {
    let level = std::env::var("TF_LOG_PROVIDER")
        .or_else(|_| std::env::var("TF_LOG"))
        .map(|l| match l.to_ascii_lowercase().as_str() {
            "trace" | "json" => "trace",
            "debug" => "debug",
            "warn" => "warn",
            "error" => "error",
            _ => "info",
        })
        .unwrap_or("info");
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "{level},h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=warn,rustls=warn"
    ));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(HclogLayer)
        .try_init();
}

/// Writes each event as one go-plugin/hclog JSON line on stderr.
struct HclogLayer;

#[derive(Default)]
struct Fields {
    message: String,
    rest: Map<String, Json>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.rest.insert(field.name().to_owned(), Json::from(value));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_owned(), Json::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_owned(), Json::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_owned(), Json::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.rest.insert(field.name().to_owned(), Json::from(text));
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut timestamp = String::new();
        let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
        let mut line = fields.rest;
        line.insert("@level".into(), level_name(event.metadata().level()).into());
        line.insert("@message".into(), fields.message.into());
        line.insert("@module".into(), event.metadata().target().into());
        line.insert("@timestamp".into(), timestamp.into());
        let mut text = Json::Object(line).to_string();
        let _ = writeln!(text);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}
