//! The OpenAPI document (generated from the handlers' annotations) and its bearer scheme.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Event Booking API",
        description = "Organizers publish events with a number of seats; users book and cancel \
            seats. Optimistic locking keeps seats from being oversold under any load.\n\n\
            Log in with `POST /auth/login`, then press **Authorize** and paste the `accessToken`."
    ),
    modifiers(&BearerScheme),
    components(schemas(ErrorBody)),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "events", description = "Events and their seats"),
        (name = "bookings", description = "Seat bookings"),
        (name = "webhooks", description = "Notifications to organizers' systems"),
        (name = "health", description = "Operations"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The accessToken from /auth/login or /auth/register"))
                    .build(),
            ),
        );
    }
}

/// Adds the error responses every route can give, documented once here rather than on each
/// handler: 413 and 415 wherever a JSON body is read, 503 wherever the database is used.
/// Runs on the finished document (the derive's modifiers run before the routes are merged).
pub fn add_common_responses(openapi: &mut utoipa::openapi::OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            if operation.request_body.is_some() {
                add(operation, "413", "Request body is too large (over 64 KiB)");
                add(
                    operation,
                    "415",
                    "Expected request with `Content-Type: application/json`",
                );
            }
            add(
                operation,
                "503",
                "Service temporarily unavailable (database down)",
            );
        }
    }
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build();
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build();
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert(RefOr::T(response));
}
