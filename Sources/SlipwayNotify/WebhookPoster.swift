import AsyncHTTPClient
import Crypto
import Foundation
import SlipwayCore
import NIOCore
import NIOHTTP1
import Synchronization

/// Posts one event to a webhook with AsyncHTTPClient, from a blocking thread:
/// connect and read time out, redirects are not followed, and the receiver's
/// reply body is read and dropped, so a receiver that answers with gigabytes
/// costs nothing but the time it takes.
final class WebhookPoster {
    /// How a POST went.
    enum Outcome: Equatable {
        /// The receiver answered 2xx: delivered.
        case delivered(status: UInt)
        /// Any other status, or no answer: try again later.
        case failed(String)
    }

    private let client: HTTPClient
    private let timeout: TimeAmount

    init(timeout: Duration) {
        let seconds = Int64(max(1, timeout.components.seconds))
        self.timeout = .seconds(seconds)
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow,
                                                     timeout: .init(connect: .seconds(min(seconds, 5)), read: .seconds(seconds)))
        configuration.decompression = .disabled
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// POSTs `event` to `target` (attempt `attempt`), waiting at most the timeout.
    func post(_ event: WebhookEvent, to target: WebhookTarget, attempt: Int) -> Outcome {
        do {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "User-Agent", value: "slipway-webhook")
            headers.add(name: "X-Slipway-Event", value: event.type)
            headers.add(name: "X-Slipway-Delivery", value: event.deliveryID)
            headers.add(name: "X-Slipway-Attempt", value: String(attempt))
            if let secret = target.secret {
                let mac = HMAC<SHA256>.authenticationCode(for: event.body, using: SymmetricKey(data: secret))
                headers.add(name: "X-Slipway-Signature", value: "sha256=" + Hex.encode(mac))
            }
            let request = try HTTPClient.Request(url: target.url, method: .POST, headers: headers, body: .bytes(event.body))
            let status = try client.execute(request: request, delegate: StatusOnly(), deadline: .now() + timeout).wait()
            return (200..<300).contains(status) ? .delivered(status: status) : .failed("HTTP \(status)")
        } catch {
            return .failed("\(error)")
        }
    }

    func shutdown() {
        try? client.syncShutdown()
    }
}

/// Keeps the status line of a reply and drops its body as it arrives.
private final class StatusOnly: HTTPClientResponseDelegate {
    typealias Response = UInt
    // Written and read on the request's event loop; atomic so the class is Sendable without a lock.
    private let status = Atomic<UInt>(0)

    func didReceiveHead(task: HTTPClient.Task<UInt>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        status.store(head.status.code, ordering: .relaxed)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<UInt>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        task.eventLoop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<UInt>) throws -> UInt { status.load(ordering: .relaxed) }
}
