FROM rust:1-bookworm AS build
WORKDIR /app
COPY . .
RUN cargo build --release --bin event-booking

FROM debian:bookworm-slim
RUN useradd --system app
COPY --from=build /app/target/release/event-booking /usr/local/bin/event-booking
USER app
EXPOSE 3000
CMD ["event-booking"]
