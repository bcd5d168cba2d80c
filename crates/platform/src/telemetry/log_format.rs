//! Log lines that carry the trace: `trace_id` and `span_id` of the span an event
//! happened in, added to whatever format writes the line.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// An event format with the current span's trace and span ids appended.
pub(super) struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceIds<F> {
    /// For a JSON format: the ids become two more fields of the object.
    pub(super) fn json(inner: F) -> Self {
        Self { inner, json: true }
    }

    /// For a text format: the ids are appended as `trace_id=... span_id=...`.
    pub(super) fn text(inner: F) -> Self {
        Self { inner, json: false }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let Some((trace_id, span_id)) = current_ids() else {
            return writer.write_str(&line);
        };
        let body = line.trim_end_matches('\n');
        if self.json
            && let Some(open) = body.strip_suffix('}')
        {
            return writeln!(
                writer,
                r#"{open},"trace_id":"{trace_id}","span_id":"{span_id}"}}"#
            );
        }
        writeln!(writer, "{body} trace_id={trace_id} span_id={span_id}")
    }
}

/// The trace and span id of the current span, if it is being traced.
fn current_ids() -> Option<(String, String)> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        (
            span_context.trace_id().to_string(),
            span_context.span_id().to_string(),
        )
    })
}
