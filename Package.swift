// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "slipway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "slipway", targets: ["slipway"]),
        .library(name: "SlipwayWire", targets: ["SlipwayWire"]),
        .library(name: "SlipwayStore", targets: ["SlipwayStore"]),
        .library(name: "SlipwayProto", targets: ["SlipwayProto"]),
        .library(name: "SlipwayProducer", targets: ["SlipwayProducer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        // The console's HTTP side (issue 14); no traits: swift-configuration is not needed.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // Webhook deliveries (issue 14): HTTP and HTTPS with timeouts, from the coordinator.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // C libraries, only ever imported by the two wrapper modules.
        .systemLibrary(
            name: "CZeroMQ",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // protobuf-c code generated from proto/: the wire contract as non-Swift clients see it.
        .target(
            name: "CSlipwayProto",
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),

        // libslipway: the producer library for C (and any C FFI) on libzmq and the protobuf-c code;
        // ops/install-libslipway builds the shared library and its pkg-config file from these sources.
        .target(
            name: "CSlipwayProducer",
            dependencies: ["CSlipwayProto"],
            cSettings: [.define("_DEFAULT_SOURCE")],
            linkerSettings: [.linkedLibrary("zmq")]
        ),
        // libc calls Swift's Glibc module does not declare (they need _GNU_SOURCE).
        .target(name: "CSystemShims"),
        // Domain values parsed once at the edge (endpoints, digests, names), back-off: no dependencies.
        .target(
            name: "SlipwayCore",
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayThreads",
            dependencies: ["CSystemShims", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .target(
            name: "SlipwayWire",
            dependencies: [
                "CZeroMQ", "CSystemShims", "SlipwayCore", "SlipwayThreads", "SlipwayProto", "SlipwayMetrics",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Keys, certificates, trust folders and the ZAP handler: who a peer is.
        .target(
            name: "SlipwayAuth",
            dependencies: [
                "SlipwayCore", "SlipwayWire", "SlipwayThreads", "SlipwayProto", "SlipwayMetrics", "CSystemShims",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayStore",
            dependencies: [
                "CLibPQ", "SlipwayCore", "SlipwayThreads",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayArtifact",
            dependencies: [
                "SlipwayCore", "SlipwayProto", "CSystemShims",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayCoordinator",
            dependencies: [
                "SlipwayCore", "SlipwayWire", "SlipwayAuth", "SlipwayStore", "SlipwayProto", "SlipwayThreads", "SlipwayArtifact", "SlipwayMetrics",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayWorker",
            dependencies: [
                "SlipwayCore", "SlipwayWire", "SlipwayProto", "SlipwayThreads", "SlipwayArtifact", "SlipwayRegionStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayRegionStore",
            dependencies: [
                "SlipwayAuth", "SlipwayCore", "SlipwayWire", "SlipwayProto", "SlipwayThreads", "SlipwayArtifact", "SlipwayMetrics", "CSystemShims",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayRegion",
            dependencies: [
                "SlipwayCore", "SlipwayWire", "SlipwayAuth", "SlipwayProto", "SlipwayThreads", "SlipwayArtifact", "SlipwayMetrics", "SlipwayRegionStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayProducer",
            dependencies: [
                "SlipwayCore", "SlipwayWire", "SlipwayProto", "SlipwayThreads",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // How results read as JSON (docs/json-output.md): one shape for the CLI and the console.
        .target(
            name: "SlipwayJSON",
            dependencies: ["SlipwayCore", "SlipwayProto", "SlipwayWire"],
            swiftSettings: strict
        ),
        // HTTP servers as daemon parts, on Hummingbird: the console, every daemon's /metrics.
        .target(
            name: "SlipwayHTTP",
            dependencies: [
                "SlipwayCore", "SlipwayThreads",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The web console and its HTTP API: a stateless client of the coordinator (docs/console.md).
        .target(
            name: "SlipwayConsole",
            dependencies: [
                "SlipwayCore", "SlipwayWire", "SlipwayProto", "SlipwayThreads", "SlipwayProducer", "SlipwayJSON", "SlipwayHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Webhooks: the outbox's notable events posted to configured URLs, at least once, in order.
        .target(
            name: "SlipwayNotify",
            dependencies: [
                "SlipwayCore", "SlipwayStore", "SlipwayProto", "SlipwayThreads", "SlipwayJSON",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayConfig",
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayMetrics",
            dependencies: ["SlipwayCore", "SlipwayThreads", .product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayAgent",
            dependencies: [
                "SlipwayAuth", "SlipwayCore", "SlipwayWire", "SlipwayProto", "SlipwayThreads", "SlipwayArtifact", "SlipwayMetrics",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayTap",
            dependencies: [
                "SlipwayCore", "SlipwayWire", "SlipwayProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "slipway",
            dependencies: [
                "SlipwayTap", "SlipwayCore", "SlipwayThreads",
                "SlipwayWire", "SlipwayStore", "SlipwayProto",
                "SlipwayCoordinator", "SlipwayWorker", "SlipwayRegion", "SlipwayAgent", "SlipwayProducer", "SlipwayMetrics", "SlipwayConfig",
                "SlipwayAuth", "SlipwayJSON", "SlipwayConsole", "SlipwayNotify", "SlipwayHTTP",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),

        // Distribution over a modelled network in virtual time, deciding with the agents' and regions' real code.
        .target(
            name: "SlipwaySimulation",
            dependencies: ["SlipwayAgent", "SlipwayArtifact", "SlipwayRegion", "SlipwayRegionStore", "SlipwayProto", "SlipwayCore"],
            swiftSettings: strict
        ),

        // Benchmarks: the Swift wrapper vs libzmq driven directly from C, same socket layout.
        .executableTarget(
            name: "slipway-bench",
            dependencies: [
                "SlipwayCore", "SlipwayWire", "SlipwayStore", "SlipwayProducer", "SlipwayProto", "SlipwayThreads", "SlipwayArtifact", "SlipwayRegion",
                "SlipwayRegionStore", "SlipwayAuth", "SlipwayAgent", "SlipwaySimulation",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/slipway-bench",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "zmq-baseline",
            path: "Benchmarks/zmq-baseline",
            linkerSettings: [.linkedLibrary("zmq"), .linkedLibrary("pthread")]
        ),

        .testTarget(
            name: "SlipwaySimulationTests",
            dependencies: ["SlipwaySimulation"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayJSONTests",
            dependencies: ["SlipwayJSON", "SlipwayProto"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayNotifyTests",
            dependencies: ["SlipwayNotify", "SlipwayProto", "SlipwayJSON"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayConsoleTests",
            dependencies: ["SlipwayConsole"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayHTTPTests",
            dependencies: ["SlipwayHTTP"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayCoreTests",
            dependencies: ["SlipwayCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayAuthTests",
            dependencies: [
                "SlipwayAuth", "SlipwayWire", "SlipwayThreads", "SlipwayProto",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayWireTests",
            dependencies: ["CSystemShims", "SlipwayCore", "SlipwayWire", "SlipwayProto", "SlipwayThreads"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayProtoTests",
            dependencies: [
                "SlipwayProto", "CSlipwayProto", "SlipwayWire",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayCoordinatorTests",
            dependencies: ["SlipwayCoordinator", "SlipwayCore", "SlipwayProto", "SlipwayWire", "SlipwayStore", "SlipwayAuth", "SlipwayTestSupport",
                           .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayWorkerTests",
            dependencies: ["SlipwayWorker"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwaySystemTests",
            dependencies: ["SlipwayCore", "SlipwayProducer", "SlipwayProto", "SlipwayWire", "SlipwayStore", "SlipwayThreads", "SlipwayTestSupport", "SlipwayAuth", "SlipwayArtifact"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayTapTests",
            dependencies: ["SlipwayTap", "SlipwayWire", "SlipwayProto"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayConfigTests",
            dependencies: ["SlipwayConfig"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayAgentTests",
            dependencies: ["SlipwayAgent", "SlipwayProto", "SlipwayAuth", "SlipwayArtifact", "SlipwayCore", "SlipwayWire", "SlipwayRegionStore", "SlipwayThreads",
                           .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayRegionTests",
            dependencies: ["SlipwayRegion", "SlipwayRegionStore", "SlipwayArtifact", "SlipwayProto", "SlipwayWire", "SlipwayCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayArtifactTests",
            dependencies: ["SlipwayArtifact", "SlipwayProto"],
            swiftSettings: strict
        ),
        .target(
            name: "SlipwayTestSupport",
            dependencies: ["CSystemShims", "SlipwayStore", "SlipwayAuth", "SlipwayWire", .product(name: "Logging", package: "swift-log")],
            path: "Tests/SlipwayTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlipwayStoreTests",
            dependencies: ["SlipwayCore", "SlipwayStore", "SlipwayThreads", "SlipwayTestSupport"],
            swiftSettings: strict
        ),
    ]
)
