//! grpc.health.v1 and server reflection (v1 and v1alpha).

use prost::Message;
use tokio_stream::StreamExt;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

async fn channel(app: &TestApp) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_ledger() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(channel(&app).await);

    for service in ["", "govledger.v1.Ledger"] {
        let resp = within(
            "Health.Check",
            health.check(HealthCheckRequest {
                service: service.into(),
            }),
        )
        .await
        .unwrap_or_else(|s| panic!("Check({service:?}): {s:?}"))
        .into_inner();
        assert_eq!(resp.status(), ServingStatus::Serving, "Check({service:?})");
    }
    let unknown = within(
        "Health.Check",
        health.check(HealthCheckRequest {
            service: "no.such.Service".into(),
        }),
    )
    .await;
    assert_status(unknown, Code::NotFound, "");
}

#[tokio::test]
async fn reflection_v1_lists_and_describes_the_ledger() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn().await;
    let mut reflection = ServerReflectionClient::new(channel(&app).await);

    let ask = |request: MessageRequest| {
        tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }])
    };
    let mut stream = within(
        "ServerReflectionInfo",
        reflection.server_reflection_info(ask(MessageRequest::ListServices(String::new()))),
    )
    .await
    .expect("reflection v1")
    .into_inner();
    let resp = within("list services", stream.next())
        .await
        .expect("a response")
        .expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection response: {resp:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"govledger.v1.Ledger"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    let mut stream = within(
        "ServerReflectionInfo",
        reflection.server_reflection_info(ask(MessageRequest::FileContainingSymbol(
            "govledger.v1.Ledger".into(),
        ))),
    )
    .await
    .expect("reflection v1")
    .into_inner();
    let resp = within("file containing symbol", stream.next())
        .await
        .expect("a response")
        .expect("ok");
    let Some(MessageResponse::FileDescriptorResponse(files)) = resp.message_response else {
        panic!("unexpected reflection response: {resp:?}");
    };
    let files: Vec<_> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            prost_types::FileDescriptorProto::decode(&bytes[..]).expect("a FileDescriptorProto")
        })
        .collect();
    let ledger = files
        .iter()
        .find(|f| f.name() == "govledger/v1/ledger.proto")
        .unwrap_or_else(|| {
            panic!(
                "ledger.proto not returned: {:?}",
                files.iter().map(|f| f.name()).collect::<Vec<_>>()
            )
        });
    assert_eq!(ledger.package(), "govledger.v1");
    assert!(ledger.service.iter().any(|s| s.name() == "Ledger"));
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_ledger() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn().await;
    let mut reflection = ServerReflectionClient::new(channel(&app).await);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = within(
        "ServerReflectionInfo",
        reflection.server_reflection_info(tokio_stream::iter(vec![request])),
    )
    .await
    .expect("reflection v1alpha")
    .into_inner();
    let resp = within("list services", stream.next())
        .await
        .expect("a response")
        .expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection response: {resp:?}");
    };
    assert!(
        list.service.iter().any(|s| s.name == "govledger.v1.Ledger"),
        "{list:?}"
    );
}
