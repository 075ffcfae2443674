extension WireCodec {
    /// Receives the next message on a ROUTER and decodes it. A message with more
    /// than `maxFrames` frames, or one that does not decode, is read whole,
    /// reported to `dropped` and skipped (`.badFrameCount` for too many frames);
    /// at most 64 are skipped per call, waiting no more after the first receive,
    /// so a flood of garbage cannot hold a loop here.
    /// - Returns: nil when `wait` ran out, or after 64 dropped messages.
    public func receiveRouted(from socket: ZMQSocket, wait: ZMQWait, maxFrames: Int = 16,
                              dropped: (WireError) -> Void) throws(ZMQError) -> (routingID: [UInt8], message: WireMessage)? {
        var wait = wait
        for _ in 0..<64 {
            let received = try socket.receive(wait: wait, maxFrames: maxFrames) {
                dropped(WireError(.badFrameCount, "message has more than \(maxFrames) frames"))
            }
            guard let frames = received else { return nil }
            wait = .never
            do {
                return try decodeRouted(frames)
            } catch {
                dropped(error)
            }
        }
        return nil
    }
}
