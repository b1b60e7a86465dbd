//! The gRPC shell of the `tools/list` answer filter for Envoy: `envoy.service.ext_proc.v3.
//! ExternalProcessor/Process`, served beside `Check` on auth-server's gRPC listener.
//!
//! deploy/envoy runs ext_proc only for requests the check marked (a composite filter keyed on
//! ext_authz's dynamic metadata), with the response headers sent and the response body
//! `BUFFERED`: one stream per marked request carries the upstream's response headers, then its
//! whole body. The check's context arrives in the metadata of each message (namespace
//! `envoy.filters.http.ext_authz`, key [`TOOLS_LIST_HEADER`]); a client can write neither.
//! This shell reads those messages into an [`UpstreamReply`], runs the authorizer's filter
//! pipeline, and transcribes its [`FilterAnswer`]: nothing to change, or a new body with its
//! `content-type` and `content-length`. Anything it cannot follow (a message that the
//! configured processing mode never sends, a body in several parts, a missing context) ends the
//! stream with a gRPC error, which Envoy answers with ext_proc's `status_on_error`: never the
//! unread list.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, Metadata, header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyMutation, BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, HttpBody,
    HttpHeaders, ProcessingRequest, ProcessingResponse, body_mutation, processing_request,
    processing_response,
};
use envoy_types::pb::google::protobuf::value::Kind;
use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::answer::FilterAnswer;
use crate::authorizer::{Authorizer, UpstreamReply};
use crate::headers::TOOLS_LIST_HEADER;

/// The metadata namespace ext_authz writes (Envoy's name for the filter).
const EXT_AUTHZ_NAMESPACE: &str = "envoy.filters.http.ext_authz";

/// Room for the headers and metadata of a body message.
const MESSAGE_OVERHEAD_BYTES: usize = 256 * 1024;

/// `envoy.service.ext_proc.v3.ExternalProcessor` over a shared [`Authorizer`].
#[derive(Debug, Clone)]
pub struct ToolsListProcessor {
    authorizer: Arc<Authorizer>,
}

impl ToolsListProcessor {
    /// The service over the process's authorizer (the one the checks use).
    pub fn new(authorizer: Arc<Authorizer>) -> Self {
        ToolsListProcessor { authorizer }
    }

    /// The tonic service, reading messages up to twice the answer bound: deploy/envoy buffers
    /// that much, so that an answer over the bound reaches the filter and is refused with the
    /// request's ids (larger still, Envoy refuses it itself).
    pub fn into_server(self) -> ExternalProcessorServer<ToolsListProcessor> {
        let limit = 2 * self.authorizer.max_list_answer_bytes() + MESSAGE_OVERHEAD_BYTES;
        ExternalProcessorServer::new(self).max_decoding_message_size(limit)
    }
}

/// The responses of one stream.
type Responses = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for ToolsListProcessor {
    type ProcessStream = Responses;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let exchange = Exchange {
            inbound: request.into_inner(),
            authorizer: self.authorizer.clone(),
            headers: None,
        };
        let responses = futures_util::stream::unfold(Some(exchange), |exchange| async move {
            let mut exchange = exchange?;
            match exchange.next().await {
                Ok(Some(response)) => Some((Ok(response), Some(exchange))),
                Ok(None) => None,
                Err(status) => Some((Err(status), None)),
            }
        });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// One marked request's stream.
struct Exchange {
    inbound: Streaming<ProcessingRequest>,
    authorizer: Arc<Authorizer>,
    /// The response headers, once they came.
    headers: Option<ReplyHeaders>,
}

/// What the response headers say, and the check's context.
struct ReplyHeaders {
    status: u16,
    content_type: Option<String>,
    content_encoding: Option<String>,
    context: String,
}

impl Exchange {
    /// Reads the next message and answers it; `None` when Envoy ended the stream.
    async fn next(&mut self) -> Result<Option<ProcessingResponse>, Status> {
        let Some(message) = self.inbound.message().await? else {
            return Ok(None);
        };
        let response = match message.request {
            Some(processing_request::Request::ResponseHeaders(headers)) => {
                let read = reply_headers(&headers, message.metadata_context.as_ref())?;
                if headers.end_of_stream {
                    // No body: nothing can hide in it, but the answer is still recorded.
                    self.filter(&read, Vec::new()).await?;
                }
                self.headers = Some(read);
                processing_response::Response::ResponseHeaders(HeadersResponse::default())
            }
            Some(processing_request::Request::ResponseBody(body)) => {
                let headers = self.headers.take().ok_or_else(|| {
                    Status::failed_precondition("a response body before the response headers")
                })?;
                processing_response::Response::ResponseBody(self.body(&headers, body).await?)
            }
            _ => {
                return Err(Status::failed_precondition(
                    "ext_proc for tools/list answers: only response headers and a BUFFERED \
                     response body are expected (deploy/envoy's processing_mode)",
                ));
            }
        };
        Ok(Some(ProcessingResponse {
            response: Some(response),
            ..Default::default()
        }))
    }

    /// The answer to the whole buffered body.
    async fn body(&self, headers: &ReplyHeaders, body: HttpBody) -> Result<BodyResponse, Status> {
        if !body.end_of_stream {
            return Err(Status::failed_precondition(
                "the response body came in parts: ext_proc must buffer it whole (BUFFERED)",
            ));
        }
        let common = match self.filter(headers, body.body).await? {
            FilterAnswer::Unchanged => CommonResponse::default(),
            // The status stays the upstream's (Envoy's mutation rules keep it): a rewritten
            // list keeps it anyway, and a refusal changes it only from another 2xx to 200.
            // The new body is never encoded: the upstream's Content-Encoding goes.
            FilterAnswer::Replaced {
                media_type, body, ..
            } => CommonResponse {
                header_mutation: Some(HeaderMutation {
                    set_headers: vec![
                        overwrite("content-type", media_type.as_str()),
                        overwrite("content-length", &body.len().to_string()),
                    ],
                    remove_headers: vec!["content-encoding".to_owned()],
                }),
                body_mutation: Some(BodyMutation {
                    mutation: Some(body_mutation::Mutation::Body(body)),
                }),
                ..Default::default()
            },
        };
        Ok(BodyResponse {
            response: Some(common),
        })
    }

    async fn filter(&self, headers: &ReplyHeaders, body: Vec<u8>) -> Result<FilterAnswer, Status> {
        let reply = UpstreamReply {
            status: headers.status,
            content_type: headers.content_type.clone(),
            content_encoding: headers.content_encoding.clone(),
            body,
        };
        self.authorizer
            .filter_tools_list(&headers.context, reply, None)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "ext_proc: tools/list answer withheld");
                Status::invalid_argument(err.to_string())
            })
    }
}

/// The status, content type and encoding of the response headers, and the check's context
/// from the metadata.
fn reply_headers(
    headers: &HttpHeaders,
    metadata: Option<&Metadata>,
) -> Result<ReplyHeaders, Status> {
    let context = metadata
        .and_then(|metadata| metadata.filter_metadata.get(EXT_AUTHZ_NAMESPACE))
        .and_then(|fields| fields.fields.get(TOOLS_LIST_HEADER))
        .and_then(|value| match &value.kind {
            Some(Kind::StringValue(text)) => Some(text.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            tracing::error!(
                "ext_proc: no tools/list context in ext_authz's metadata (forward the \
                 namespace {EXT_AUTHZ_NAMESPACE} with metadata_options)"
            );
            Status::invalid_argument("no tools/list context in ext_authz's metadata")
        })?;
    let mut status = None;
    let mut content_type = None;
    let mut content_encoding = None;
    let pairs = headers
        .headers
        .as_ref()
        .map(|map| map.headers.as_slice())
        .unwrap_or_default();
    for header in pairs {
        let (name, value) = crate::grpc::raw_pair(header);
        let value = value.map(str::to_owned);
        match name {
            ":status" => status = value.and_then(|status| status.parse::<u16>().ok()),
            // A repeated header: the filter must not guess which copy the client reads.
            "content-type" if content_type.is_some() => content_type = Some(String::new()),
            "content-type" => content_type = value,
            "content-encoding" if content_encoding.is_some() => {
                content_encoding = Some("(repeated)".to_owned());
            }
            "content-encoding" => content_encoding = value,
            _ => {}
        }
    }
    Ok(ReplyHeaders {
        status: status
            .ok_or_else(|| Status::invalid_argument("response headers without :status"))?,
        content_type,
        content_encoding,
        context,
    })
}

fn overwrite(name: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            raw_value: value.as_bytes().to_vec(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}
