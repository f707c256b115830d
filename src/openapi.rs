//! The OpenAPI document (generated from the handlers' annotations) and its bearer scheme.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
