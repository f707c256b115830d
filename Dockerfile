# The API and the seed program. `docker compose up` runs them with PostgreSQL 15;
# seed with `docker compose exec api seed`.
FROM rust:1-bookworm AS build
WORKDIR /app
COPY . .
RUN cargo build --release --bin event-booking --bin seed

FROM debian:bookworm-slim
RUN useradd --system app
COPY --from=build /app/target/release/event-booking /app/target/release/seed /usr/local/bin/
USER app
EXPOSE 3000
CMD ["event-booking"]
