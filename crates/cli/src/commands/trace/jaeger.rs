//! Reading a trace from Jaeger's query API (`GET /api/traces/{id}`), over a
//! plain HTTP/1.0 request: enough for a local Jaeger, without an HTTP client
//! dependency.

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Span;

/// The spans of `trace_id` as Jaeger has them.
pub(super) async fn fetch_trace(jaeger_url: &str, trace_id: &str) -> anyhow::Result<Vec<Span>> {
    let authority = jaeger_url
        .strip_prefix("http://")
        .with_context(|| format!("--jaeger {jaeger_url}: only http:// URLs are supported"))?
        .trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot reach Jaeger at {jaeger_url}"))?;
    let request = format!(
        "GET /api/traces/{trace_id} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("Jaeger sent no HTTP body")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        anyhow::bail!(
            "Jaeger answered {}",
            head.lines().next().unwrap_or_default()
        );
    }
    parse_trace(body)
}

/// Spans from Jaeger's JSON (`data[0].spans`, services from `data[0].processes`).
fn parse_trace(body: &str) -> anyhow::Result<Vec<Span>> {
    let json: serde_json::Value =
        serde_json::from_str(body).context("Jaeger sent JSON that does not parse")?;
    let Some(trace) = json["data"].as_array().and_then(|traces| traces.first()) else {
        return Ok(Vec::new());
    };
    let spans = trace["spans"].as_array().cloned().unwrap_or_default();
    Ok(spans
        .iter()
        .map(|span| {
            let tag = |key: &str| {
                span["tags"]
                    .as_array()
                    .and_then(|tags| tags.iter().find(|tag| tag["key"] == key))
                    .map(|tag| tag["value"].clone())
            };
            let is_error = tag("error") == Some(serde_json::Value::Bool(true))
                || tag("otel.status_code").is_some_and(|value| value == "ERROR");
            let parent = span["references"]
                .as_array()
                .and_then(|references| {
                    references
                        .iter()
                        .find(|reference| reference["refType"] == "CHILD_OF")
                })
                .and_then(|reference| reference["spanID"].as_str())
                .unwrap_or_default();
            let process = span["processID"].as_str().unwrap_or_default();
            Span {
                span_id: span["spanID"].as_str().unwrap_or_default().to_owned(),
                parent_span_id: parent.to_owned(),
                name: span["operationName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                service: trace["processes"][process]["serviceName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                start_micros: span["startTime"].as_u64().unwrap_or(0),
                duration_micros: span["duration"].as_u64().unwrap_or(0),
                is_error,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaeger_spans_keep_their_parents_services_and_errors() {
        let body = r#"{"data":[{"traceID":"t","spans":[
            {"traceID":"t","spanID":"a","operationName":"root","references":[],"startTime":10,"duration":50,"processID":"p1","tags":[]},
            {"traceID":"t","spanID":"b","operationName":"child","references":[{"refType":"CHILD_OF","traceID":"t","spanID":"a"}],
             "startTime":20,"duration":5,"processID":"p2","tags":[{"key":"error","type":"bool","value":true}]}],
            "processes":{"p1":{"serviceName":"order"},"p2":{"serviceName":"billing"}}}]}"#;
        let spans = parse_trace(body).expect("parses");
        assert_eq!(spans.len(), 2);
        assert_eq!(
            (
                spans[1].parent_span_id.as_str(),
                spans[1].service.as_str(),
                spans[1].is_error
            ),
            ("a", "billing", true)
        );
    }
}
