# One image with the zchan examples (net_producer, net_consumer, worker_pool's dispatcher and
# worker), built from Debian 12 packages. Used by docker-compose.yml.
FROM debian:bookworm

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libzmq3-dev cppzmq-dev libcereal-dev libasio-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
        -DZCHAN_BUILD_TESTS=OFF -DZCHAN_BUILD_BENCH=OFF -DZCHAN_INSTALL=OFF \
    && cmake --build /build -j2 --target net_producer net_consumer \
        worker_pool_dispatcher worker_pool_worker \
    && install -m 755 /build/examples/net_producer /build/examples/net_consumer \
        /build/examples/worker_pool/dispatcher /build/examples/worker_pool/worker /usr/local/bin/ \
    && rm -rf /build

# Each service picks its program with `command:`.
CMD ["net_producer", "tcp://*:5555"]
