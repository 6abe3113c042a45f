//! Trace export over OTLP (OpenTelemetry Protocol, OTLP/HTTP with protobuf, `POST
//! <collector>/v1/traces`): the node's `tracing` spans (every RPC and public request, sync
//! round, data fetch) reach a vendor's existing tracing stack (an OpenTelemetry Collector,
//! Jaeger, Tempo). On when `[log] otlp_endpoint` is set, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; batched by the SDK on
//! its own thread (`OTEL_BSP_*` tune it), so a slow or absent collector never holds a request.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

/// Where traces go: `[log] otlp_endpoint` (a collector's base URL; `/v1/traces` is added), else
/// the OpenTelemetry environment variables; `None`: no export.
pub fn endpoint(configured: Option<&str>) -> Option<String> {
    if let Some(base) = configured {
        return Some(traces_url(base));
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT").map(|b| traces_url(&b)))
}

/// `<base>/v1/traces` (OTLP exporter specification, "Endpoint URLs for OTLP/HTTP").
fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// A tracer provider exporting to `url` in batches, as service `knoop` (or
/// `OTEL_SERVICE_NAME`), and its tracer.
pub fn tracer(url: &str) -> Result<(SdkTracerProvider, SdkTracer), String> {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .map_err(|e| format!("OTLP exporter for {url}: {e}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "knoop".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service)
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build();
    let tracer = provider.tracer("knoop");
    Ok((provider, tracer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://c/otlp/v1/traces"),
            "https://c/otlp/v1/traces"
        );
        assert_eq!(
            endpoint(Some("http://c:4318")).as_deref(),
            Some("http://c:4318/v1/traces")
        );
    }
}
